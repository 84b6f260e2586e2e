package injector_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// TestSwapUnderLoad: revisions swap while pods are injected concurrently; no admission fails, and
// every pod is wholly of one revision (its status names the revision its sidecar was rendered for).
func TestSwapUnderLoad(t *testing.T) {
	a, b := compileDefault(t, "swap-a"), compileDefault(t, "swap-b")
	inj := newInjector(t, a, map[string]string{"istio-injection": "enabled"})
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	stop := make(chan struct{})
	var done, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := inj.Inject(t.Context(), request(raw, "default", ""))
				if err == nil && res.Pod == nil {
					err = errNoPatch
				}
				if err == nil {
					st, _, _ := inject.ReadStatus(res.Pod)
					if st.Revision != res.Revision || !strings.Contains(string(mustJSON(t, res.Pod)), `"value":"`+res.Revision+`"`) {
						err = errMixed
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
			}
		}()
	}
	swaps := 0
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); swaps++ {
		next := a
		if swaps%2 == 0 {
			next = b
		}
		if err := inj.Activate(next); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || done.Load() == 0 {
		t.Fatalf("%d admissions, %d failed across %d swaps (first: %v)", done.Load(), failed.Load(), swaps, firstErr.Load())
	}
	t.Logf("%d admissions across %d swaps, none failed", done.Load(), swaps)
}

type testError string

func (e testError) Error() string { return string(e) }

const (
	errNoPatch = testError("no patch")
	errMixed   = testError("pod mixes two revisions")
)

func review(t *testing.T, raw []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	return request(raw, "default", "").Request
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
	shadow := newInjector(t, sp, labels)
	m := metrics.New()
	var logBuf syncBuffer
	inj := injector.New(cluster.Static{Labels: labels}, injector.WithShadow(shadow), injector.WithMetrics(m), injector.WithDecisionLog(&logBuf))
	if err := inj.Activate(compileDefault(t, "")); err != nil {
		t.Fatal(err)
	}
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
	if entry["decision_id"] == "" || entry["path"] != "injector/mutate/decision" || entry["bundles"].(map[string]any)["live"].(map[string]any)["revision"] != "default-1" {
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
	inj := injector.New(cluster.Static{}, injector.WithMetrics(m))
	if err := inj.Activate(compileDefault(t, "")); err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
	if resp := inj.Mutating().Handle(t.Context(), review(t, raw)); resp.Patch != nil {
		t.Fatal("a pod in an unlabelled namespace was injected")
	}
	if got := labelledValue(t, m, "rego_injector_admissions_total", "reason", "namespace_not_enabled"); got != 1 {
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
	return labelledValue(t, m, name, "kind", kind)
}

// labelledValue is the value of the counter name whose label has value.
func labelledValue(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	return seriesValue(t, m, name, map[string]string{label: value})
}

// seriesValue is the value of the counter name whose series has all of labels.
func seriesValue(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, metric := range f.GetMetric() {
			for k, v := range labels {
				if !hasLabel(metric, k, v) {
					continue series
				}
			}
			return metric.GetCounter().GetValue()
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
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
	replaceModule(t, b, "injector.mutate", `package injector.mutate

decision := {"inject": false, "code": "override_refused", "reasons": ["r"], "deny": ["image not allowed"], "warnings": ["w"],
	"refused_overrides": [{"annotation": "sidecar.istio.io/proxyImage", "value": "evil/proxy", "reason": "image not allowed"}]}
`)
	replaceModule(t, b, "injector.validate", `package injector.validate

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
	inj := injector.New(cluster.Static{}, injector.WithMetrics(m))
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
	resp := inj.Mutating().Handle(t.Context(), review(t, raw))
	if resp.Allowed || resp.Patch != nil || resp.Result == nil || resp.Result.Code != 403 || resp.Result.Message != "image not allowed" || len(resp.Warnings) != 1 {
		t.Fatalf("mutating response %+v, want a 403 denial with the policy's message and warning", resp)
	}
	if got := labelledValue(t, m, "rego_injector_admissions_total", "reason", "override_refused"); got != 1 {
		t.Errorf("admissions_total{reason=override_refused} = %v, want 1", got)
	}
	resp = inj.Validating().Handle(t.Context(), review(t, raw))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("validating response %+v, want allowed without warnings", resp)
	}
	if got := labelledValue(t, m, "rego_injector_policy_violations_total", "mode", "dryrun"); got != 1 {
		t.Errorf("policy_violations_total{mode=dryrun} = %v, want 1", got)
	}
}

// replaceModule swaps the non-test module of package pkg in b for src.
func replaceModule(t *testing.T, b *bundle.Bundle, pkg, src string) {
	t.Helper()
	parsed, err := ast.ParseModuleWithOpts("replaced.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	for i, mod := range b.Modules {
		if strings.TrimPrefix(mod.Parsed.Package.Path.String(), "data.") == pkg {
			b.Modules[i].Raw, b.Modules[i].Parsed = []byte(src), parsed
			return
		}
	}
	t.Fatalf("the bundle has no package %s", pkg)
}
