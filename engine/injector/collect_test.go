package injector

import (
	"context"
	"runtime"
	"testing"
	"weak"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// TestSwappedRevisionIsCollected: once a new revision is active and the admissions that used the old
// one are answered, nothing holds the old one (its policy, templates and memo): memory stays flat
// across any number of swaps.
func TestSwappedRevisionIsCollected(t *testing.T) {
	compile := func(rev string) *policy.Policy {
		b, err := regoinjector.DefaultBundle()
		if err != nil {
			t.Fatal(err)
		}
		b.Manifest.Revision = rev
		p, err := policy.Compile(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	inj := New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}}, WithMemo(16))
	req := benchRequest(&testing.B{}, "typical")
	var old weak.Pointer[revision]
	for i, rev := range []string{"r1", "r2", "r3"} {
		if err := inj.Activate(compile(rev)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if resp := inj.Mutating().Handle(t.Context(), req); resp.Patch == nil {
				t.Fatalf("%s: no patch", rev)
			}
			inj.Validating().Handle(t.Context(), req)
		}
		if i == 0 {
			old = weak.Make(inj.active.Load())
		}
	}
	runtime.GC()
	runtime.GC()
	if old.Value() != nil {
		t.Fatal("revision r1 is still reachable after two swaps")
	}
}
