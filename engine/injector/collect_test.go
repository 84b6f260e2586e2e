package injector

import (
	"runtime"
	"testing"
	"weak"

	"github.com/rego-injector/rego-injector/engine/cluster"
)

// TestSwappedRevisionIsCollected: once a new revision is active and the admissions that used the old
// one are answered, nothing holds the old one (its policy, templates and memo): memory stays flat
// across any number of swaps.
func TestSwappedRevisionIsCollected(t *testing.T) {
	inj := New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}}, WithMemo(16))
	req := benchRequest(t, "typical")
	var old weak.Pointer[revision]
	for i, rev := range []string{"r1", "r2", "r3"} {
		if err := inj.Activate(compileAt(t, rev)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			a := Admission{Raw: req.Object.Raw, Request: req}
			if res, err := inj.Inject(t.Context(), a); err != nil || res.Patch == nil {
				t.Fatalf("%s: no patch: %v", rev, err)
			}
			if _, err := inj.Validate(t.Context(), a); err != nil {
				t.Fatal(err)
			}
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
