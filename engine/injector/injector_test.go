package injector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	evanphx "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code produces now")

// goldenCase is testdata/golden/<case>/case.yaml.
type goldenCase struct {
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	Operation       string            `json:"operation"`
	// InjectedAt, when set, first injects the pod with the default bundle relabelled to this
	// revision, then feeds the result to the case: the re-injection path.
	InjectedAt string `json:"injectedAt"`
}

// compileDefault compiles the embedded default bundle, with its revision replaced when rev is set.
func compileDefault(t testing.TB, rev string) *policy.Policy {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	if rev != "" {
		b.Manifest.Revision = rev
	}
	p, err := policy.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newInjector(t testing.TB, p *policy.Policy, labels map[string]string) *injector.Injector {
	t.Helper()
	inj := injector.New(cluster.Static{Labels: labels}, injector.WithOwnNamespace("rego-injector-system"))
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	return inj
}

// request builds the Pod the apiserver would send for raw in namespace ns.
func request(raw []byte, ns, op string) injector.Pod {
	if op == "" {
		op = "CREATE"
	}
	req := &admissionv1.AdmissionRequest{
		UID:       "0c1f6a3e-golden",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Operation(op),
	}
	req.Object.Raw = raw
	if op == "UPDATE" {
		req.OldObject.Raw = raw
	}
	return injector.Pod{Raw: raw, Request: req}
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	current := compileDefault(t, "")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c goldenCase
			readYAML(t, filepath.Join(dir, "case.yaml"), &c)
			if c.Namespace == "" {
				c.Namespace = "default"
			}
			raw := yamlToJSON(t, filepath.Join(dir, "pod.yaml"))
			if c.InjectedAt != "" {
				old := newInjector(t, compileDefault(t, c.InjectedAt), c.NamespaceLabels)
				res, err := old.Inject(t.Context(), request(raw, c.Namespace, ""))
				if err != nil || res.Pod == nil {
					t.Fatalf("setup: inject at %s: %v (no change: %v)", c.InjectedAt, err, res.Pod == nil)
				}
				raw = mustJSON(t, res.Pod)
			}
			inj := newInjector(t, current, c.NamespaceLabels)
			res, err := inj.Inject(t.Context(), request(raw, c.Namespace, c.Operation))
			if err != nil {
				t.Fatalf("inject: %v", err)
			}
			golden(t, filepath.Join(dir, "decision.json"), indentJSON(t, mustJSON(t, res.Decision)))
			if res.Patch == nil {
				golden(t, filepath.Join(dir, "patch.json"), []byte("null\n"))
				return
			}
			golden(t, filepath.Join(dir, "patch.json"), indentJSON(t, res.Patch))

			// The patch, applied by an independent implementation to the pod as sent, gives exactly
			// the pod the engine rendered.
			applied := applyPatch(t, raw, res.Patch)
			if !jsonEqual(t, applied, mustJSON(t, res.Pod)) {
				t.Errorf("applying the patch does not give the rendered pod:\napplied  %s\nrendered %s", applied, mustJSON(t, res.Pod))
			}
			out, err := yaml.JSONToYAML(applied)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "patched.yaml"), out)

			// Injecting the injected pod again changes nothing.
			again, err := inj.Inject(t.Context(), request(applied, c.Namespace, c.Operation))
			if err != nil {
				t.Fatalf("inject again: %v", err)
			}
			if again.Patch != nil {
				t.Errorf("second injection patched again: %s", again.Patch)
			}
		})
	}
}

// TestReinjectionMatchesFreshInjection: a pod injected at an older revision, re-injected, is the pod
// a fresh injection at the new revision gives.
func TestReinjectionMatchesFreshInjection(t *testing.T) {
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	labels := map[string]string{"istio-injection": "enabled"}
	old := newInjector(t, compileDefault(t, "old-1"), labels)
	first, err := old.Inject(t.Context(), request(raw, "default", ""))
	if err != nil || first.Pod == nil {
		t.Fatalf("inject at old-1: %v", err)
	}
	current := newInjector(t, compileDefault(t, ""), labels)
	fresh, err := current.Inject(t.Context(), request(raw, "default", ""))
	if err != nil {
		t.Fatal(err)
	}
	re, err := current.Inject(t.Context(), request(mustJSON(t, first.Pod), "default", ""))
	if err != nil {
		t.Fatal(err)
	}
	if re.Pod == nil {
		t.Fatal("re-injection left the pod at the old revision")
	}
	// The status annotations differ only in their reasons, which tell of the re-injection.
	reStatus, freshStatus := takeStatus(t, re.Pod), takeStatus(t, fresh.Pod)
	reStatus.Reasons, freshStatus.Reasons = nil, nil
	if !reflect.DeepEqual(reStatus, freshStatus) {
		t.Errorf("status after re-injection %+v, fresh %+v", reStatus, freshStatus)
	}
	if !reflect.DeepEqual(re.Pod, fresh.Pod) {
		t.Errorf("re-injected pod differs from a fresh injection:\nre    %s\nfresh %s", mustJSON(t, re.Pod), mustJSON(t, fresh.Pod))
	}
}

// takeStatus removes the status annotation from pod and returns it.
func takeStatus(t testing.TB, pod map[string]any) inject.Status {
	t.Helper()
	st, ok, err := inject.ReadStatus(pod)
	if err != nil || !ok {
		t.Fatalf("status annotation: present %v, %v", ok, err)
	}
	delete(pod["metadata"].(map[string]any)["annotations"].(map[string]any), inject.StatusAnnotation)
	return st
}

func TestInactiveInjectorFails(t *testing.T) {
	inj := injector.New(cluster.Static{})
	if _, err := inj.Inject(t.Context(), request([]byte(`{}`), "default", "")); err != injector.ErrNotActive {
		t.Fatalf("got %v, want ErrNotActive", err)
	}
}

// TestBrokenBundleKeepsActiveRevision: a revision whose templates do not parse is refused and the
// active one keeps serving.
func TestBrokenBundleKeepsActiveRevision(t *testing.T) {
	inj := newInjector(t, compileDefault(t, ""), nil)
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = "broken"
	setTemplate(b, "sidecar", "{{ if }")
	broken, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Activate(broken); err == nil {
		t.Fatal("a bundle with a template that does not parse was activated")
	}
	if got := inj.Revision(); got != "default-1" {
		t.Fatalf("revision %q after a refused activation, want default-1", got)
	}
}

// TestBrokenTemplatesRefusedAtActivation: a revision whose template fails on a plain pod never
// serves; the self-test refuses it and the active revision stays.
func TestBrokenTemplatesRefusedAtActivation(t *testing.T) {
	for name, text := range map[string]string{
		"missing value":  "spec:\n  containers:\n  - name: x\n    image: {{ .Values.nope }}\n",
		"panic":          "{{ div 1 0 }}",
		"not a pod":      "spec:\n  containers: 3\n",
		"forbidden part": "spec:\n  hostNetwork: true\n",
		"typo":           "spec:\n  containers:\n  - name: x\n    imagee: y\n",
		"bad values":     "spec:\n  containers:\n  - name: x\n    image: y\n    resources: {requests: {cpu: lots}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			inj := newInjector(t, compileDefault(t, ""), nil)
			b, err := regoinjector.DefaultBundle()
			if err != nil {
				t.Fatal(err)
			}
			b.Manifest.Revision = "broken"
			setTemplate(b, "sidecar", text)
			p, err := policy.Compile(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			if err := inj.Activate(p); err == nil || !strings.Contains(err.Error(), "self-test") {
				t.Fatalf("activated, or refused for another reason: %v", err)
			}
			if inj.Revision() != "default-1" {
				t.Fatalf("revision %q after a refused activation", inj.Revision())
			}
		})
	}
}

// TestTemplateErrorsFailClosed: a template that fails on one pod leaves that pod untouched and says
// why.
func TestTemplateErrorsFailClosed(t *testing.T) {
	for name, text := range map[string]string{
		"missing value": "spec:\n  containers:\n  - name: x\n    image: {{ if eq .Pod.Name \"web\" }}{{ .Values.nope }}{{ else }}y{{ end }}\n",
		"panic":         "spec:\n  containers:\n  - name: x\n    image: y{{ if eq .Pod.Name \"web\" }}{{ div 1 0 }}{{ end }}\n",
	} {
		t.Run(name, func(t *testing.T) {
			b, err := regoinjector.DefaultBundle()
			if err != nil {
				t.Fatal(err)
			}
			setTemplate(b, "sidecar", text)
			p, err := policy.Compile(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			inj := newInjector(t, p, map[string]string{"istio-injection": "enabled"})
			raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
			res, err := inj.Inject(t.Context(), request(raw, "default", ""))
			if err == nil {
				t.Fatalf("no error; patch %s", res.Patch)
			}
			if res.Patch != nil || res.Pod != nil {
				t.Fatalf("an error came with a patch: %s", res.Patch)
			}
		})
	}
}

func setTemplate(b *bundle.Bundle, variant, text string) {
	templates := b.Data["injector"].(map[string]any)["templates"].(map[string]any)
	templates[variant] = text
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return
		}
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func yamlToJSON(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return js
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indentJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func applyPatch(t testing.TB, doc, patch []byte) []byte {
	t.Helper()
	p, err := evanphx.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decode patch: %v\n%s", err, patch)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, patch)
	}
	return out
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// golden compares got with the file at path, or rewrites the file with -update.
func golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
