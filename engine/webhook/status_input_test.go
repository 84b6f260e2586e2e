package webhook_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// mistypedStatuses are hand-made status annotations the engine cannot take as its own.
var mistypedStatuses = []string{
	`{"revision":"default-0","variant":"sidecar","containers":"istio-proxy"}`,
	`{"revision":"default-0","containers":[1,2]}`,
	`{"revision":"default-0","initContainers":{"istio-init":true}}`,
	`{"revision":"default-0","volumes":"x","imagePullSecrets":[null]}`,
	`{"revision":"default-0","labels":[{}],"annotations":7}`,
	`{"revision":"default-0","variant":3}`,
	`{"revision":"default-0","reasons":[1]}`,
	`{"revision":"default-0","replaced":"x"}`,
	`{"revision":"default-0","replaced":{"containers":"x"}}`,
	`{"revision":"default-0","replaced":{"containers":{"istio-proxy":1}}}`,
	`{"revision":"default-0","replaced":{"containers":{"istio-proxy":{"name":"other"}}}}`,
	`{"revision":"default-0","Containers":"istio-proxy"}`,
	`{"revision":"default-0","CONTAINERS":[1,2],"Replaced":{"containers":{"istio-proxy":1}}}`,
	`{"revision":"default-0","requester":"alice"}`,
	`{"revision":"default-0","requester":{"username":"a","groups":"g"}}`,
	`{"revision":"default-0","reserved":[1]}`,
	`{"revision":"default-0","rewritten":{"containers":{"app":1}}}`,
	`{"revision":"default-0","rewritten":{"containers":{"app":{"exec":{}}}}}`,
	`{"revision":"default-0","rewritten":{"initContainers":{"app":{"readinessProbe":"x"}}}}`,
	`{"revision":1}`,
	`{"revision":"default-1","containers":"istio-proxy"}`,
	`[]`,
	`"istio-proxy"`,
	`null`,
	`{not json`,
}

// statusPod is the pod of the golden case status-mistyped-lists with annotation key set to value.
func statusPod(t *testing.T, key, value string) []byte {
	t.Helper()
	var pod map[string]any
	if err := json.Unmarshal(fixture.YAMLToJSON(t, "testdata/golden/status-mistyped-lists/pod.yaml"), &pod); err != nil {
		t.Fatal(err)
	}
	pod["metadata"].(map[string]any)["annotations"] = map[string]any{key: value}
	return fixture.JSON(t, pod)
}

// postReview sends the pod raw, created in namespace default, to h over HTTP, as the apiserver does.
func postReview(t *testing.T, h admission.Handler, raw []byte) (int, string, *admissionv1.AdmissionReview) {
	t.Helper()
	return post(t, h, fixture.Admission(raw, "default", "").Request)
}

// post sends req to h over HTTP, as the apiserver does, and reads the answer.
func post(t *testing.T, h admission.Handler, req *admissionv1.AdmissionRequest) (int, string, *admissionv1.AdmissionReview) {
	t.Helper()
	body := fixture.JSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	admission.Serve(h, slog.New(slog.DiscardHandler)).ServeHTTP(rec, hr)
	if rec.Code != http.StatusOK {
		return rec.Code, rec.Body.String(), nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview: %v: %s", err, rec.Body)
	}
	return rec.Code, rec.Body.String(), &out
}

// checkPatched applies the response's patch, if any, and checks that every container of the result
// is an object with a name.
func checkPatched(t *testing.T, raw []byte, out *admissionv1.AdmissionReview) {
	t.Helper()
	if out.Response.Patch == nil {
		return
	}
	var pod struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(fixture.ApplyPatch(t, raw, out.Response.Patch), &pod); err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{"containers", "initContainers"} {
		items, _ := pod.Spec[list].([]any)
		for i, c := range items {
			if m, ok := c.(map[string]any); !ok || m["name"] == nil || m["name"] == "" {
				t.Errorf("the patched pod's %s[%d] is %v", list, i, c)
			}
		}
	}
}

// TestMistypedStatusThroughTheWebhooks: a pod with a hand-made status annotation whose fields have
// the wrong types gets an answer from both webhooks, not an HTTP 500: the default policy finds the
// status unreadable and leaves the pod alone, and a status it reads (unknown keys such as
// "Containers" ignored) the engine strips. Istio's annotation is only a sign that Istio injected the
// pod, whatever it holds.
func TestMistypedStatusThroughTheWebhooks(t *testing.T) {
	inj := webhook.New(fixture.Injector(t, fixture.Policy(t, ""), map[string]string{"istio-injection": "enabled"}))
	for _, key := range []string{inject.StatusAnnotation, "sidecar.istio.io/status"} {
		for _, value := range mistypedStatuses {
			raw := statusPod(t, key, value)
			for name, h := range map[string]admission.Handler{"mutating": inj.Mutating(), "validating": inj.Validating()} {
				code, body, out := postReview(t, h, raw)
				if code != http.StatusOK {
					t.Errorf("%s %s=%s: HTTP %d: %s", name, key, value, code, body)
					continue
				}
				checkPatched(t, raw, out)
			}
		}
	}
}

// clearStatusError reports whether an error answer names the status annotation and what is wrong
// with it in words, not in Go types.
func clearStatusError(body string) bool {
	return strings.Contains(body, "annotation "+inject.StatusAnnotation+": ") && !strings.Contains(body, "Go struct") &&
		!strings.Contains(body, "Go value") && !strings.Contains(body, "%!")
}

// TestMistypedStatusWithAPolicyThatInjects: a policy that injects whatever the status says leaves
// the engine a status it cannot strip; the answer is an error that names the annotation and what is
// wrong with it (docs/policy-authors.md: "Unreadable status"), or a pod whose containers are all
// containers.
func TestMistypedStatusWithAPolicyThatInjects(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	fixture.ReplaceModule(t, b, "injector.mutate", "package injector.mutate\n\nimport data.injector.lib\n\ndecision := {\"inject\": true, \"variant\": \"sidecar\", \"values\": lib.values, \"reasons\": [\"always\"]}\n")
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	inj := webhook.New(fixture.Injector(t, p, map[string]string{"istio-injection": "enabled"}))
	for _, value := range mistypedStatuses {
		raw := statusPod(t, inject.StatusAnnotation, value)
		code, body, out := postReview(t, inj.Mutating(), raw)
		switch {
		case code == http.StatusOK:
			checkPatched(t, raw, out)
		case !clearStatusError(body):
			t.Errorf("%s: HTTP %d, an unclear error: %s", value, code, body)
		}
	}
}
