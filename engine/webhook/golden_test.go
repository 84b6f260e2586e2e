package webhook_test

import (
	"net/http"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// goldenCase is testdata/golden/<case>/case.yaml.
type goldenCase struct {
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	Operation       string            `json:"operation"`
	// InjectedAt, when set, first injects the pod with the default bundle relabelled to this
	// revision, then feeds the result to the case: the re-injection path.
	InjectedAt string `json:"injectedAt"`
	// Data, when set, is merged over the default bundle's data: a cluster's own settings
	// ({"injector": {"values": {"cni": {"enabled": true}}}}).
	Data map[string]any `json:"data"`
}

// TestGolden sends each case's pod through the mutating webhook over HTTP, as the apiserver does,
// and compares the whole answer: the response (allowed, status, warnings, audit annotations) in
// response.json, the patch in patch.json, the patched pod in patched.yaml, and the validating
// webhook's answer on the patched pod in validation.json.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	current := fixture.Policy(t, "")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c goldenCase
			fixture.ReadYAML(t, filepath.Join(dir, "case.yaml"), &c)
			if c.Namespace == "" {
				c.Namespace = "default"
			}
			raw := fixture.YAMLToJSON(t, filepath.Join(dir, "pod.yaml"))
			if c.InjectedAt != "" {
				old := fixture.Injector(t, fixture.Policy(t, c.InjectedAt), c.NamespaceLabels)
				res, err := old.Inject(t.Context(), fixture.Admission(raw, c.Namespace, ""))
				if err != nil || res.Pod == nil {
					t.Fatalf("setup: inject at %s: %v (no change: %v)", c.InjectedAt, err, res.Pod == nil)
				}
				raw = fixture.JSON(t, res.Pod)
			}
			policy := current
			if c.Data != nil {
				policy = fixture.Policy(t, "", c.Data)
			}
			w := webhook.New(fixture.Injector(t, policy, c.NamespaceLabels))
			resp := answer(t, w, fixture.Admission(raw, c.Namespace, c.Operation))
			patch := resp.Patch
			resp.Patch, resp.PatchType = nil, nil
			fixture.Golden(t, filepath.Join(dir, "response.json"), fixture.Indent(t, fixture.JSON(t, resp)))
			if patch == nil {
				fixture.Golden(t, filepath.Join(dir, "patch.json"), []byte("null\n"))
				return
			}
			fixture.Golden(t, filepath.Join(dir, "patch.json"), fixture.Indent(t, patch))

			// The patch, applied by an independent implementation to the pod as sent, is the pod
			// the validating webhook judges and the golden patched.yaml.
			applied := fixture.ApplyPatch(t, raw, patch)
			out, err := yaml.JSONToYAML(applied)
			if err != nil {
				t.Fatal(err)
			}
			fixture.Golden(t, filepath.Join(dir, "patched.yaml"), out)
			code, body, verdict := post(t, w.Validating(), fixture.Admission(applied, c.Namespace, c.Operation).Request)
			if code != http.StatusOK {
				t.Fatalf("validating webhook: HTTP %d: %s", code, body)
			}
			verdict.Response.UID = ""
			fixture.Golden(t, filepath.Join(dir, "validation.json"), fixture.Indent(t, fixture.JSON(t, verdict.Response)))
			if !verdict.Response.Allowed {
				// The default policies must admit what they inject: a pod denied here would never run.
				t.Errorf("the validating webhook denies the injected pod: %s", verdict.Response.Result.Message)
			}

			// Injecting the injected pod again changes nothing.
			if again := answer(t, w, fixture.Admission(applied, c.Namespace, c.Operation)); again.Patch != nil {
				t.Errorf("second injection patched again: %s", again.Patch)
			}
		})
	}
}

// answer is the mutating webhook's response to a, over HTTP, without its uid.
func answer(t *testing.T, w *webhook.Webhooks, a injector.Admission) *admissionv1.AdmissionResponse {
	t.Helper()
	code, body, out := post(t, w.Mutating(), a.Request)
	if code != http.StatusOK {
		t.Fatalf("mutating webhook: HTTP %d: %s", code, body)
	}
	out.Response.UID = ""
	return out.Response
}
