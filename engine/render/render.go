package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/workload"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime"
)

// ErrUnknownVariant is returned when a decision names a variant the bundle has no template for.
var ErrUnknownVariant = errors.New("no template for variant")

// ErrTemplate marks a template that failed to execute or produced something other than a partial Pod.
var ErrTemplate = errors.New("template error")

// Data is the model a template executes against: see docs/templates.md.
type Data struct {
	// Pod is the pod being injected, as the Kubernetes Go types read it.
	Pod *corev1.Pod
	// Namespace is the pod's namespace.
	Namespace cluster.Namespace
	// Owner is the top controller, or nil for a bare pod.
	Owner *workload.Owner
	// Values are the decision's values.
	Values map[string]any
	// Variant is the variant being rendered.
	Variant string
	// Revision is the bundle revision.
	Revision string
}

// Set holds the parsed templates of one bundle revision. It is safe for concurrent use.
type Set struct {
	templates map[string]*template.Template
	// parsed remembers the partial pods recently rendered, by the text the template produced: pods
	// of one workload (and many alike) render the same sidecar, and parsing the YAML is most of the
	// cost of rendering.
	parsed *lru.Cache[[sha256.Size]byte, Partial]
}

// cacheSize bounds the parsed partials a Set keeps.
const cacheSize = 512

// Parse parses each variant's template text with Funcs and missingkey=error. Sources whose names
// start with "_" are partials: they are parsed into every variant (for `define` blocks used with
// `include`) and are not variants themselves.
func Parse(sources map[string]string) (*Set, error) {
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	cache, err := lru.New[[sha256.Size]byte, Partial](cacheSize)
	if err != nil {
		return nil, err
	}
	s := &Set{templates: map[string]*template.Template{}, parsed: cache}
	for _, name := range names {
		if IsPartial(name) {
			continue
		}
		t := template.New(name).Option("missingkey=error").Funcs(Funcs())
		t.Funcs(template.FuncMap{"include": include(t)})
		for _, partial := range names {
			if !IsPartial(partial) {
				continue
			}
			if _, err := t.New(partial).Parse(sources[partial]); err != nil {
				return nil, fmt.Errorf("parse template %q: %w", partial, err)
			}
		}
		if _, err := t.Parse(sources[name]); err != nil {
			return nil, fmt.Errorf("parse template %q: %w", name, err)
		}
		s.templates[name] = t
	}
	return s, nil
}

// IsPartial reports whether a template source of this name is a partial rather than a variant.
func IsPartial(name string) bool { return strings.HasPrefix(name, "_") }

// include executes the named template of t's set with data and returns its output, so that it can
// be piped (to nindent, say), which the template action cannot.
func include(t *template.Template) func(name string, data any) (string, error) {
	return func(name string, data any) (string, error) {
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
}

// Partial is a rendered sidecar: a JSON object with at most metadata.labels, metadata.annotations,
// spec.containers, spec.initContainers, spec.volumes and spec.imagePullSecrets, and a rewrite
// section: by list ("containers", "initContainers"), the pod's own containers whose probes are
// replaced, each with its name and its new readinessProbe, livenessProbe or startupProbe; and
// "annotations", the pod's annotations replaced (a string) or removed (null).
type Partial map[string]any

// RemovedAnnotations are the pod annotations the rewrite section removes (null values).
func (p Partial) RemovedAnnotations() []string {
	rewrite, _ := p["rewrite"].(map[string]any)
	annotations, _ := rewrite["annotations"].(map[string]any)
	var out []string
	for k, v := range annotations {
		if v == nil {
			out = append(out, k)
		}
	}
	return out
}

// probeRewrite is one container of a partial's rewrite section.
type probeRewrite struct {
	Name           string        `json:"name"`
	ReadinessProbe *corev1.Probe `json:"readinessProbe,omitempty"`
	LivenessProbe  *corev1.Probe `json:"livenessProbe,omitempty"`
	StartupProbe   *corev1.Probe `json:"startupProbe,omitempty"`
}

// allowed lists the fields a rendered partial Pod may set, by section.
var allowed = map[string]map[string]bool{
	"metadata": {"labels": true, "annotations": true},
	"spec":     {"containers": true, "initContainers": true, "volumes": true, "imagePullSecrets": true},
}

// Render executes the variant's template against data and checks that the output is a partial Pod.
func (s *Set) Render(variant string, data Data) (p Partial, err error) {
	t, ok := s.templates[variant]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownVariant, variant)
	}
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: variant %q: panic: %v", ErrTemplate, variant, r)
		}
	}()
	var buf bytes.Buffer
	buf.WriteString(variant)
	buf.WriteByte(0)
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("%w: variant %q: %w", ErrTemplate, variant, err)
	}
	key := sha256.Sum256(buf.Bytes())
	if cached, ok := s.parsed.Get(key); ok {
		return runtime.DeepCopyJSON(cached), nil
	}
	p, err = parsePartial(variant, buf.Bytes()[len(variant)+1:])
	if err != nil {
		return nil, err
	}
	s.parsed.Add(key, runtime.DeepCopyJSON(p))
	return p, nil
}

func parsePartial(variant string, out []byte) (Partial, error) {
	// One YAML parse, with YAML 1.2's types (so `y` and `no` are strings, as a template author
	// means them) and duplicate keys refused; then the JSON is decoded strictly into the Pod type,
	// which catches misspelt and mistyped fields with their path, and into plain values to merge.
	var doc any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("%w: variant %q rendered invalid YAML: %w", ErrTemplate, variant, err)
	}
	var rewrites any
	if m, ok := doc.(map[string]any); ok {
		rewrites = m["rewrite"]
		delete(m, "rewrite")
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: variant %q rendered YAML that is not JSON: %w", ErrTemplate, variant, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var typed corev1.Pod
	if err := dec.Decode(&typed); err != nil {
		return nil, fmt.Errorf("%w: variant %q rendered an invalid pod: %w", ErrTemplate, variant, err)
	}
	var p Partial
	if err := json.Unmarshal(js, &p); err != nil {
		return nil, fmt.Errorf("%w: variant %q: %w", ErrTemplate, variant, err)
	}
	if p == nil {
		p = Partial{}
	}
	if rewrites != nil {
		if p["rewrite"], err = parseRewrites(variant, rewrites); err != nil {
			return nil, err
		}
	}
	for key, section := range p {
		if key == "rewrite" {
			continue
		}
		if key == "apiVersion" || key == "kind" {
			continue
		}
		fields, known := allowed[key]
		if !known {
			return nil, fmt.Errorf("%w: variant %q sets %q; a sidecar template may set only metadata and spec", ErrTemplate, variant, key)
		}
		m, ok := section.(map[string]any)
		if !ok && section != nil {
			return nil, fmt.Errorf("%w: variant %q: %s is not an object", ErrTemplate, variant, key)
		}
		for field := range m {
			if !fields[field] {
				return nil, fmt.Errorf("%w: variant %q sets %s.%s; a sidecar template may set only %s", ErrTemplate, variant, key, field, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
		}
	}
	return p, nil
}

// parseRewrites checks a partial's rewrite section: lists of containers, each a name and probes
// only, strictly typed.
func parseRewrites(variant string, v any) (map[string]any, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: variant %q: rewrite: %w", ErrTemplate, variant, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var typed struct {
		Containers     []probeRewrite     `json:"containers"`
		InitContainers []probeRewrite     `json:"initContainers"`
		Annotations    map[string]*string `json:"annotations"`
	}
	if err := dec.Decode(&typed); err != nil {
		return nil, fmt.Errorf("%w: variant %q rendered an invalid rewrite section (containers and initContainers, each a name and probes; annotations, each a string or null): %w", ErrTemplate, variant, err)
	}
	for _, c := range append(typed.Containers, typed.InitContainers...) {
		if c.Name == "" {
			return nil, fmt.Errorf("%w: variant %q: rewrite: a container without a name", ErrTemplate, variant)
		}
	}
	var out map[string]any
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, fmt.Errorf("%w: variant %q: rewrite: %w", ErrTemplate, variant, err)
	}
	return out, nil
}
