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
	if err := inj.Activate(compileDefault(t, "")); err != nil {
		t.Fatal(err)
	}
	return ns, m, inj
}

// TestMemo: the same pod admitted again (another replica: another request uid) gets the same answer
// from the memo; a change of the namespace's labels, of the pod or of the revision is a new answer.
func TestMemo(t *testing.T) {
	ns, m, inj := memoised(t)
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	first := inj.Mutating().Handle(t.Context(), review(t, raw))
	if first.Patch == nil {
		t.Fatalf("not injected: %+v", first.Result)
	}
	again := review(t, raw)
	again.UID = "another-replica"
	if second := inj.Mutating().Handle(t.Context(), again); !bytes.Equal(second.Patch, first.Patch) {
		t.Fatalf("the same pod got another patch:\n%s\n%s", first.Patch, second.Patch)
	}
	if hits := labelledValue(t, m, "rego_injector_memo_lookups_total", "result", "hit"); hits != 1 {
		t.Fatalf("memo hits %v, want 1", hits)
	}

	ns.labels = map[string]string{"istio-injection": "disabled"}
	if resp := inj.Mutating().Handle(t.Context(), review(t, raw)); resp.Patch != nil {
		t.Fatal("a pod was injected from the memo after its namespace disabled injection")
	}
	ns.labels = map[string]string{"istio-injection": "enabled"}
	other := bytes.Replace(raw, []byte(`"name":"web"`), []byte(`"name":"api"`), 1)
	if bytes.Equal(other, raw) {
		t.Fatal("test pod has no name to change")
	}
	if resp := inj.Mutating().Handle(t.Context(), review(t, other)); bytes.Equal(resp.Patch, first.Patch) || resp.Patch == nil {
		t.Fatal("another pod got the first pod's patch")
	}

	if err := inj.Activate(compileDefault(t, "default-2")); err != nil {
		t.Fatal(err)
	}
	resp := inj.Mutating().Handle(t.Context(), review(t, raw))
	if !strings.Contains(string(resp.Patch), "default-2") {
		t.Fatalf("after a swap the memo answered with the old revision: %s", resp.Patch)
	}
	if hits := labelledValue(t, m, "rego_injector_memo_lookups_total", "result", "hit"); hits != 1 {
		t.Fatalf("memo hits %v, want still 1", hits)
	}
}

// TestMemoNeedsPurePolicy: a revision whose policy reads the clock is evaluated every time.
func TestMemoNeedsPurePolicy(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	replaceModule(t, b, "injector.mutate", `package injector.mutate

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
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	for range 2 {
		inj.Mutating().Handle(t.Context(), review(t, raw))
	}
	if lookups := labelledValue(t, m, "rego_injector_memo_lookups_total", "result", "hit") + labelledValue(t, m, "rego_injector_memo_lookups_total", "result", "miss"); lookups != 0 {
		t.Fatalf("%v memo lookups for a policy that reads the clock", lookups)
	}
	if !compileDefault(t, "").Pure() {
		t.Fatal("the default policy is not pure: the memo never serves it")
	}
}

// TestMemoKey: every field of the request the answer may depend on is part of the key: changing any
// one of them is a miss, and only the request uid is left out.
func TestMemoKey(t *testing.T) {
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
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
			inj.Mutating().Handle(t.Context(), review(t, raw))
			again := review(t, raw)
			again.UID = "another"
			inj.Mutating().Handle(t.Context(), again)
			changed := review(t, raw)
			change(changed, ns)
			inj.Mutating().Handle(t.Context(), changed)
			if hits := labelledValue(t, m, "rego_injector_memo_lookups_total", "result", "hit"); hits != 1 {
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
	if err := inj.Activate(compileDefault(t, "")); err != nil {
		t.Fatal(err)
	}
	fresh := newInjector(t, compileDefault(t, ""), ns.labels)
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	pods := make([][]byte, 6) // more pods than the memo holds: entries are evicted while read
	want := make([][]byte, len(pods))
	for i := range pods {
		pods[i] = bytes.Replace(raw, []byte(`"name":"web"`), []byte(fmt.Sprintf(`"name":"web-%d"`, i)), 1)
		want[i] = fresh.Mutating().Handle(t.Context(), review(t, pods[i])).Patch
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 50 {
				i := (w + n) % len(pods)
				if got := inj.Mutating().Handle(t.Context(), review(t, pods[i])).Patch; !bytes.Equal(got, want[i]) {
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
	raw := yamlToJSON(t, "testdata/golden/enabled-namespace/pod.yaml")
	for range 2 {
		if resp := inj.Validating().Handle(t.Context(), review(t, raw)); !resp.Allowed {
			t.Fatalf("denied: %+v", resp.Result)
		}
	}
	if hits := seriesValue(t, m, "rego_injector_memo_lookups_total", map[string]string{"endpoint": "validate", "result": "hit"}); hits != 1 {
		t.Fatalf("validate memo hits %v, want 1", hits)
	}
	ns.labels["rego-injector.io/require-sidecar"] = "true"
	if resp := inj.Validating().Handle(t.Context(), review(t, raw)); resp.Allowed {
		t.Fatal("a pod without the sidecar was allowed from the memo after its namespace began requiring it")
	}
}
