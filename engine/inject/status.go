package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// StatusAnnotation records on an injected pod what was injected, so that it can be stripped again.
const StatusAnnotation = "rego-injector.io/status"

// Status is the content of StatusAnnotation.
type Status struct {
	Variant  string `json:"variant"`
	Revision string `json:"revision"`
	// Rev and Tag name the revision that injected the pod and the tag that chose it, when named
	// revisions are served (engine/revisions).
	Rev              string   `json:"rev,omitempty"`
	Tag              string   `json:"tag,omitempty"`
	Containers       []string `json:"containers,omitempty"`
	InitContainers   []string `json:"initContainers,omitempty"`
	Volumes          []string `json:"volumes,omitempty"`
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	Labels           []string `json:"labels,omitempty"`
	Annotations      []string `json:"annotations,omitempty"`
	// Replaced keeps, by list ("containers", "initContainers") and name, the pod's own containers
	// that had a sidecar's name and were merged with the template, as they were before: Strip puts
	// them back rather than deleting them.
	Replaced map[string]map[string]any `json:"replaced,omitempty"`
	Reasons  []string                  `json:"reasons,omitempty"`
	// Requester is who asked for the pod, recorded when policy honoured an override because of who
	// asked; Reserved names those overrides' annotations. Audit judges the pod as that requester.
	Requester *Requester `json:"requester,omitempty"`
	Reserved  []string   `json:"reserved,omitempty"`
	// Rewritten keeps, by list and container name, the probes of the pod's own containers that the
	// template's rewrite section replaced, as they were (null for a probe the container did not
	// have): Strip puts them back.
	Rewritten map[string]map[string]map[string]any `json:"rewritten,omitempty"`
	// RewrittenAnnotations keeps the pod's annotations the rewrite section replaced or removed, as
	// they were (null for one the pod did not have): Strip puts them back.
	RewrittenAnnotations map[string]*string `json:"rewrittenAnnotations,omitempty"`
}

// DefaultRev is the name of the revision a lone bundle serves: the one a status without Rev
// (written before named revisions) or an admission without a selection names.
const DefaultRev = "default"

// InjectedBy reports whether st records an injection by bundle revision bundle, served as the
// revision named rev ("" being DefaultRev on either side), as the default policy compares them
// (status_rev and serving_rev in policies/injector/lib/pod.rego).
func (st Status) InjectedBy(bundle, rev string) bool {
	name := func(s string) string {
		if s == "" {
			return DefaultRev
		}
		return s
	}
	return st.Revision == bundle && name(st.Rev) == name(rev)
}

// Requester is the user and groups of an admission request, as policy's subjects read them.
type Requester struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups,omitempty"`
}

// ReadStatus returns the pod's injection status; ok is false when the pod carries none. The
// annotation must hold a JSON object with a string "revision" whose other fields, where present and
// not null, have the types Status gives them; keys match exactly, and unknown ones are ignored. That
// is how the default policy reads it too (status in policies/injector/lib/pod.rego), so that a
// status it takes for one the engine wrote, the engine can strip.
func ReadStatus(pod map[string]any) (st Status, ok bool, err error) {
	raw, present := annotations(pod)[StatusAnnotation]
	if !present {
		return Status{}, false, nil
	}
	s, isString := raw.(string)
	if !isString {
		return Status{}, true, fmt.Errorf("annotation %s is not a string", StatusAnnotation)
	}
	if st, err = parseStatus(s); err != nil {
		return Status{}, true, fmt.Errorf("annotation %s: %w", StatusAnnotation, err)
	}
	return st, true, nil
}

// parseStatus decodes a status field by field. encoding/json straight into Status would match keys
// regardless of case ("Containers" for "containers") and read null as an empty string.
func parseStatus(s string) (Status, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Status{}, err
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return Status{}, fmt.Errorf("want a JSON object, got %s", kindOf(v))
	}
	var st Status
	rev, present := fields["revision"]
	if !present {
		return Status{}, errors.New("revision: missing")
	}
	var err error
	if st.Revision, err = stringField("revision", rev); err != nil {
		return Status{}, err
	}
	for key, field := range map[string]*string{"variant": &st.Variant, "rev": &st.Rev, "tag": &st.Tag} {
		if v := fields[key]; v != nil {
			if *field, err = stringField(key, v); err != nil {
				return Status{}, err
			}
		}
	}
	for key, list := range map[string]*[]string{
		"containers":       &st.Containers,
		"initContainers":   &st.InitContainers,
		"volumes":          &st.Volumes,
		"imagePullSecrets": &st.ImagePullSecrets,
		"labels":           &st.Labels,
		"annotations":      &st.Annotations,
		"reasons":          &st.Reasons,
		"reserved":         &st.Reserved,
	} {
		if *list, err = stringList(key, fields[key]); err != nil {
			return Status{}, err
		}
	}
	if st.Replaced, err = replaced(fields["replaced"]); err != nil {
		return Status{}, err
	}
	if st.Requester, err = requester(fields["requester"]); err != nil {
		return Status{}, err
	}
	if st.Rewritten, err = rewritten(fields["rewritten"]); err != nil {
		return Status{}, err
	}
	if st.RewrittenAnnotations, err = rewrittenAnnotations(fields["rewrittenAnnotations"]); err != nil {
		return Status{}, err
	}
	return st, nil
}

func stringField(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", key, kindOf(v))
	}
	return s, nil
}

// stringList reads a list of strings; null or absent is no list.
func stringList(key string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list of strings, got %s", key, kindOf(v))
	}
	out := make([]string, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want a string, got %s", key, i, kindOf(item))
		}
		out[i] = s
	}
	return out, nil
}

// requester reads Status.Requester; null or absent is none.
func requester(v any) (*Requester, error) {
	if v == nil {
		return nil, nil
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("requester: want an object, got %s", kindOf(v))
	}
	var r Requester
	var err error
	if r.Username, err = stringField("requester.username", fields["username"]); err != nil {
		return nil, err
	}
	if r.Groups, err = stringList("requester.groups", fields["groups"]); err != nil {
		return nil, err
	}
	return &r, nil
}

// rewrittenAnnotations reads Status.RewrittenAnnotations: by key, the value as it was or null.
func rewrittenAnnotations(v any) (map[string]*string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rewrittenAnnotations: want an object, got %s", kindOf(v))
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			out[k] = nil
		case string:
			out[k] = &v
		default:
			return nil, fmt.Errorf("rewrittenAnnotations[%q]: want a string or null, got %s", k, kindOf(v))
		}
	}
	return out, nil
}

// rewrittenProbes are the probe fields a rewrite may replace.
var rewrittenProbes = []string{"readinessProbe", "livenessProbe", "startupProbe"}

// rewritten reads Status.Rewritten: by list, by name, by probe field, the probe as it was or null.
func rewritten(v any) (map[string]map[string]map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	lists, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rewritten: want an object, got %s", kindOf(v))
	}
	out := map[string]map[string]map[string]any{}
	for list, v := range lists {
		if list != "containers" && list != "initContainers" {
			return nil, fmt.Errorf("rewritten: %q is not containers or initContainers", list)
		}
		byName, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("rewritten.%s: want an object, got %s", list, kindOf(v))
		}
		out[list] = map[string]map[string]any{}
		for name, v := range byName {
			probes, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rewritten.%s[%q]: want an object, got %s", list, name, kindOf(v))
			}
			for field, probe := range probes {
				if !slices.Contains(rewrittenProbes, field) {
					return nil, fmt.Errorf("rewritten.%s[%q]: %q is not a probe", list, name, field)
				}
				if _, ok := probe.(map[string]any); !ok && probe != nil {
					return nil, fmt.Errorf("rewritten.%s[%q].%s: want an object or null, got %s", list, name, field, kindOf(probe))
				}
			}
			out[list][name] = probes
		}
	}
	return out, nil
}

// replaced reads Status.Replaced: by list, by name, the container as it was.
func replaced(v any) (map[string]map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	lists, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("replaced: want an object, got %s", kindOf(v))
	}
	out := make(map[string]map[string]any, len(lists))
	for list, v := range lists {
		if v == nil {
			continue
		}
		byName, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("replaced.%s: want an object, got %s", list, kindOf(v))
		}
		for name, container := range byName {
			if _, ok := container.(map[string]any); !ok {
				return nil, fmt.Errorf("replaced.%s[%q]: want an object, got %s", list, name, kindOf(container))
			}
		}
		out[list] = byName
	}
	return out, nil
}

// kindOf names the JSON type of v, for errors.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func annotations(pod map[string]any) map[string]any {
	meta, _ := pod["metadata"].(map[string]any)
	a, _ := meta["annotations"].(map[string]any)
	return a
}
