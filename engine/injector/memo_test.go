package injector_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authv1 "k8s.io/api/authentication/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// switchable answers with whatever labels and annotations the test sets last.
type switchable struct{ labels, annotations map[string]string }

func (s *switchable) Namespace(_ context.Context, name string) (cluster.Namespace, error) {
	return cluster.Namespace{Name: name, Labels: maps.Clone(s.labels), Annotations: maps.Clone(s.annotations)}, nil
}

func (*switchable) Synced() bool { return true }

// memoised is an injector with a memo, its metrics, and a namespace source enabled for injection
// that the test may change.
func memoised(t *testing.T) (*switchable, *metrics.Metrics, *injector.Injector) {
	t.Helper()
	ns := &switchable{labels: map[string]string{"istio-injection": "enabled"}}
	m := metrics.New()
	inj := injector.New(ns, injector.WithMemo(16), injector.WithMetrics(m))
	if err := inj.Activate(fixture.Policy(t, "")); err != nil {
		t.Fatal(err)
	}
	return ns, m, inj
}

// TestMemo: the same pod admitted again (another replica: another request uid) gets the same answer
// from the memo; a change of the namespace's labels, of the pod or of the revision is a new answer.
func TestMemo(t *testing.T) {
	ns, m, inj := memoised(t)
	raw := fixture.YAMLToJSON(t, plainPod)
	first := mutate(t, inj, raw)
	if first.Patch == nil {
		t.Fatalf("not injected: %+v", first.Decision)
	}
	again := review(t, raw)
	again.UID = "another-replica"
	if second := mutateRequest(t, inj, again); !bytes.Equal(second.Patch, first.Patch) {
		t.Fatalf("the same pod got another patch:\n%s\n%s", first.Patch, second.Patch)
	}
	if hits := fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"result": "hit"}); hits != 1 {
		t.Fatalf("memo hits %v, want 1", hits)
	}

	ns.labels = map[string]string{"istio-injection": "disabled"}
	if resp := mutate(t, inj, raw); resp.Patch != nil {
		t.Fatal("a pod was injected from the memo after its namespace disabled injection")
	}
	ns.labels = map[string]string{"istio-injection": "enabled"}
	other := bytes.Replace(raw, []byte(`"name":"web"`), []byte(`"name":"api"`), 1)
	if bytes.Equal(other, raw) {
		t.Fatal("test pod has no name to change")
	}
	if resp := mutate(t, inj, other); bytes.Equal(resp.Patch, first.Patch) || resp.Patch == nil {
		t.Fatal("another pod got the first pod's patch")
	}

	if err := inj.Activate(fixture.Policy(t, "default-2")); err != nil {
		t.Fatal(err)
	}
	resp := mutate(t, inj, raw)
	if !strings.Contains(string(resp.Patch), "default-2") {
		t.Fatalf("after a swap the memo answered with the old revision: %s", resp.Patch)
	}
	if hits := fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"result": "hit"}); hits != 1 {
		t.Fatalf("memo hits %v, want still 1", hits)
	}
}

// TestMemoNeedsPurePolicy: a revision whose policy reads the clock is evaluated every time.
func TestMemoNeedsPurePolicy(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	fixture.ReplaceModule(t, b, "injector.mutate", `package injector.mutate

decision := {"inject": false, "reasons": [sprintf("evaluated at %d", [time.now_ns()])]}
`)
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	inj := injector.New(cluster.Static{}, injector.WithMemo(16), injector.WithMetrics(m))
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	raw := fixture.YAMLToJSON(t, plainPod)
	for range 2 {
		mutate(t, inj, raw)
	}
	if lookups := fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"result": "hit"}) + fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"result": "miss"}); lookups != 0 {
		t.Fatalf("%v memo lookups for a policy that reads the clock", lookups)
	}
	if !fixture.Policy(t, "").Pure() {
		t.Fatal("the default policy is not pure: the memo never serves it")
	}
}

// TestMemoKey: every field of the request the answer may depend on is part of the key: changing any
// one of them is a miss, and only the request uid is left out.
func TestMemoKey(t *testing.T) {
	raw := fixture.YAMLToJSON(t, plainPod)
	yes := true
	for name, change := range map[string]func(r *admissionv1.AdmissionRequest, ns *switchable){
		"user":  func(r *admissionv1.AdmissionRequest, _ *switchable) { r.UserInfo.Username = "alice" },
		"group": func(r *admissionv1.AdmissionRequest, _ *switchable) { r.UserInfo.Groups = []string{"mesh-admins"} },
		"extra": func(r *admissionv1.AdmissionRequest, _ *switchable) {
			r.UserInfo.Extra = map[string]authv1.ExtraValue{"k": {"v"}}
		},
		"dry run":              func(r *admissionv1.AdmissionRequest, _ *switchable) { r.DryRun = &yes },
		"operation":            func(r *admissionv1.AdmissionRequest, _ *switchable) { r.Operation = "UPDATE"; r.OldObject.Raw = raw },
		"name":                 func(r *admissionv1.AdmissionRequest, _ *switchable) { r.Name = "web" },
		"namespace annotation": func(_ *admissionv1.AdmissionRequest, ns *switchable) { ns.annotations = map[string]string{"a": "b"} },
		"namespace label":      func(_ *admissionv1.AdmissionRequest, ns *switchable) { ns.labels["team"] = "shop" },
	} {
		t.Run(name, func(t *testing.T) {
			ns, m, inj := memoised(t)
			mutate(t, inj, raw)
			again := review(t, raw)
			again.UID = "another"
			mutateRequest(t, inj, again)
			changed := review(t, raw)
			change(changed, ns)
			mutateRequest(t, inj, changed)
			if hits := fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"result": "hit"}); hits != 1 {
				t.Errorf("%v hits, want 1: only the other uid may hit", hits)
			}
		})
	}
}

// TestMemoConcurrent: many admissions of the same few pods at once, under -race, all get the
// answer a fresh evaluation gives.
func TestMemoConcurrent(t *testing.T) {
	ns := &switchable{labels: map[string]string{"istio-injection": "enabled"}}
	inj := injector.New(ns, injector.WithMemo(4))
	if err := inj.Activate(fixture.Policy(t, "")); err != nil {
		t.Fatal(err)
	}
	fresh := fixture.Injector(t, fixture.Policy(t, ""), ns.labels)
	raw := fixture.YAMLToJSON(t, plainPod)
	pods := make([][]byte, 6) // more pods than the memo holds: entries are evicted while read
	want := make([][]byte, len(pods))
	for i := range pods {
		pods[i] = bytes.Replace(raw, []byte(`"name":"web"`), []byte(fmt.Sprintf(`"name":"web-%d"`, i)), 1)
		want[i] = mutate(t, fresh, pods[i]).Patch
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 50 {
				i := (w + n) % len(pods)
				if got := mutate(t, inj, pods[i]).Patch; !bytes.Equal(got, want[i]) {
					t.Errorf("pod %d: memoised patch differs from a fresh one", i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestMemoValidate: the validating webhook reuses its verdict for the same pod, and a namespace
// that starts requiring the sidecar gets a fresh one.
func TestMemoValidate(t *testing.T) {
	ns, m, inj := memoised(t)
	raw := fixture.YAMLToJSON(t, plainPod)
	for range 2 {
		if v := validate(t, inj, raw); len(v.Deny) > 0 {
			t.Fatalf("denied: %v", v.Deny)
		}
	}
	if hits := fixture.Counter(t, m, "rego_injector_memo_lookups_total", map[string]string{"endpoint": "validate", "result": "hit"}); hits != 1 {
		t.Fatalf("validate memo hits %v, want 1", hits)
	}
	ns.labels["rego-injector.io/require-sidecar"] = "true"
	if v := validate(t, inj, raw); len(v.Deny) == 0 {
		t.Fatal("a pod without the sidecar was allowed from the memo after its namespace began requiring it")
	}
}

// mutate injects the pod raw, created in namespace default, with inj.
func mutate(t *testing.T, inj *injector.Injector, raw []byte) injector.Result {
	t.Helper()
	return mutateRequest(t, inj, review(t, raw))
}

// mutateRequest injects the pod of req with inj.
func mutateRequest(t *testing.T, inj *injector.Injector, req *admissionv1.AdmissionRequest) injector.Result {
	t.Helper()
	res, err := inj.Inject(t.Context(), injector.Admission{Raw: req.Object.Raw, Request: req})
	if err != nil {
		t.Error(err)
	}
	return res
}

// validate judges the pod raw, created in namespace default, with inj.
func validate(t *testing.T, inj *injector.Injector, raw []byte) policy.Verdict {
	t.Helper()
	res, err := inj.Validate(t.Context(), fixture.Admission(raw, "default", ""))
	if err != nil {
		t.Error(err)
	}
	return res.Verdict
}

func review(t *testing.T, raw []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	return fixture.Admission(raw, "default", "").Request
}
