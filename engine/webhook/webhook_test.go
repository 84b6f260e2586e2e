package webhook_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

func review(t *testing.T, raw []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	return fixture.Admission(raw, "default", "").Request
}

// TestShadowAndDecisionLog: a shadow bundle whose policy is disabled differs on inject; the
// difference is counted, the live answer applied, and every admission leaves one decision log line
// that carries the revision and no environment values.
func TestShadowAndDecisionLog(t *testing.T) {
	labels := map[string]string{"istio-injection": "enabled"}
	sb, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	sb.Manifest.Revision = "shadow-1"
	sb.Data["injector"].(map[string]any)["config"].(map[string]any)["policy"] = "disabled"
	sp, err := policy.Compile(t.Context(), sb)
	if err != nil {
		t.Fatal(err)
	}
	shadow := fixture.Injector(t, sp, labels)
	m := metrics.New()
	var logBuf syncBuffer
	inj := webhook.New(fixture.Injector(t, fixture.Policy(t, ""), labels), webhook.WithShadow(shadow), webhook.WithMetrics(m), webhook.WithDecisionLog(&logBuf))
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"spec\":{\"containers\":[{\"env\":[{\"name\":\"PASSWORD\",\"value\":\"hunter2\"}]}]}}"}},"spec":{"containers":[{"name":"app","image":"nginx","env":[{"name":"PASSWORD","value":"hunter2"}]}]}}`)
	resp := inj.Mutating().Handle(t.Context(), review(t, raw))
	if !resp.Allowed || resp.Patch == nil {
		t.Fatalf("the live answer was not applied: %+v", resp)
	}
	waitCounter(t, m, "rego_injector_shadow_differences_total", "inject", 1)

	var entry map[string]any
	line := strings.TrimSpace(logBuf.String())
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("decision log line %q: %v", line, err)
	}
	if entry["decision_id"] == "" || entry["path"] != "injector/mutate/decision" || entry["bundles"].(map[string]any)["default"].(map[string]any)["revision"] != "default-1" {
		t.Errorf("decision log line lacks its fields: %s", line)
	}
	if entry["result"].(map[string]any)["inject"] != true {
		t.Errorf("decision log result %v", entry["result"])
	}
	if strings.Contains(line, "hunter2") {
		t.Errorf("an environment value reached the decision log: %s", line)
	}
}

// TestSkipReasonMetric: a skipped pod is counted under the decision's code.
func TestSkipReasonMetric(t *testing.T) {
	m := metrics.New()
	inj := webhook.New(fixture.Injector(t, fixture.Policy(t, ""), nil), webhook.WithMetrics(m))
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
	if resp := inj.Mutating().Handle(t.Context(), review(t, raw)); resp.Patch != nil {
		t.Fatal("a pod in an unlabelled namespace was injected")
	}
	if got := fixture.Counter(t, m, "rego_injector_admissions_total", map[string]string{"reason": "namespace_not_enabled"}); got != 1 {
		t.Errorf("admissions_total{reason=namespace_not_enabled} = %v, want 1", got)
	}
}

func waitCounter(t *testing.T, m *metrics.Metrics, name, kind string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if counterValue(t, m, name, kind) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{kind=%q} never reached %v", name, kind, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counterValue(t *testing.T, m *metrics.Metrics, name, kind string) float64 {
	t.Helper()
	return fixture.Counter(t, m, name, map[string]string{"kind": kind})
}

// syncBuffer is a bytes.Buffer safe for the decision log's writer and the test's reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPolicyDeniesAndDryRuns: a mutating decision with deny refuses the pod; a validating verdict
// with only dryrun violations admits it silently and counts them by rule and mode.
func TestPolicyDeniesAndDryRuns(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	fixture.ReplaceModule(t, b, "injector.mutate", `package injector.mutate

decision := {"inject": false, "code": "override_refused", "reasons": ["r"], "deny": ["image not allowed"], "warnings": ["w"],
	"refused_overrides": [{"annotation": "sidecar.istio.io/proxyImage", "value": "evil/proxy", "reason": "image not allowed"}]}
`)
	fixture.ReplaceModule(t, b, "injector.validate", `package injector.validate

violations contains {"rule": "labels", "mode": "dryrun", "message": "pod has no labels"} if not input.object.metadata.labels

dryrun contains v.message if some v in violations

deny := set()

warn := set()
`)
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	inj := webhook.New(fixture.Injector(t, p, nil), webhook.WithMetrics(m))
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
	resp := inj.Mutating().Handle(t.Context(), review(t, raw))
	if resp.Allowed || resp.Patch != nil || resp.Result == nil || resp.Result.Code != 403 || resp.Result.Message != "image not allowed" || len(resp.Warnings) != 1 {
		t.Fatalf("mutating response %+v, want a 403 denial with the policy's message and warning", resp)
	}
	if got := fixture.Counter(t, m, "rego_injector_admissions_total", map[string]string{"reason": "override_refused"}); got != 1 {
		t.Errorf("admissions_total{reason=override_refused} = %v, want 1", got)
	}
	resp = inj.Validating().Handle(t.Context(), review(t, raw))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("validating response %+v, want allowed without warnings", resp)
	}
	if got := fixture.Counter(t, m, "rego_injector_policy_violations_total", map[string]string{"mode": "dryrun"}); got != 1 {
		t.Errorf("policy_violations_total{mode=dryrun} = %v, want 1", got)
	}
}

// TestEphemeralContainersAreValidated: the validating webhook judges an update of the
// pods/ephemeralcontainers subresource (kubectl debug), and policy denies a debug container that
// runs as the proxy's UID; other subresources are let through unjudged.
func TestEphemeralContainersAreValidated(t *testing.T) {
	w := webhook.New(fixture.Injector(t, fixture.Policy(t, ""), map[string]string{"istio-injection": "enabled"}))
	res, err := fixture.Injector(t, fixture.Policy(t, ""), map[string]string{"istio-injection": "enabled"}).
		Inject(t.Context(), fixture.Admission(fixture.YAMLToJSON(t, "testdata/golden/enabled-namespace/pod.yaml"), "default", ""))
	if err != nil || res.Pod == nil {
		t.Fatalf("setup: %v", err)
	}
	running := fixture.JSON(t, res.Pod)
	debugged := res.Pod
	debugged["spec"].(map[string]any)["ephemeralContainers"] = []any{map[string]any{
		"name": "debugger", "image": "busybox:1.36", "securityContext": map[string]any{"runAsUser": 1337},
	}}
	req := fixture.Admission(fixture.JSON(t, debugged), "default", "UPDATE").Request
	req.OldObject.Raw = running
	req.SubResource = "ephemeralcontainers"
	req.Resource.Resource = "pods"
	if resp := w.Validating().Handle(t.Context(), req); resp.Allowed || !strings.Contains(resp.Result.Message, `ephemeral container "debugger"`) {
		t.Fatalf("a debug container running as the proxy's UID was allowed: %+v", resp.Result)
	}
	req.SubResource = "status"
	if resp := w.Validating().Handle(t.Context(), req); !resp.Allowed {
		t.Fatalf("a status update was judged: %+v", resp.Result)
	}
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
