package revisions_test

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// Two revisions may serve the very same bundle: a pod injected by one and now answered by the other
// is out of date all the same (its istio.io/rev names the old one), for the webhook and for audit.
func TestSameBundleOtherRevisionIsOutdated(t *testing.T) {
	revs := map[string]*injector.Injector{}
	for _, name := range []string{"1-31", "1-32"} {
		inj := injector.New(testNamespaces, injector.WithOwnNamespace(fixture.OwnNamespace))
		if err := inj.Activate(fixture.Policy(t, "same-1")); err != nil {
			t.Fatal(err)
		}
		revs[name] = inj
	}
	set, err := revisions.NewSet(newRouter(t), revs, revisions.StaticTags{}, testNamespaces)
	if err != nil {
		t.Fatal(err)
	}

	first, err := set.Inject(t.Context(), fixture.Admission(pod(`"istio.io/rev":"1-31"`), "unlabeled", ""))
	if err != nil || first.Pod == nil {
		t.Fatalf("not injected by 1-31: %+v, %v", first.Decision, err)
	}
	// The pod's label now names 1-32, as after `kubectl label` and a re-created pod.
	first.Pod["metadata"].(map[string]any)["labels"].(map[string]any)["istio.io/rev"] = "1-32"
	raw, err := json.Marshal(first.Pod)
	if err != nil {
		t.Fatal(err)
	}

	again, err := set.Inject(t.Context(), fixture.Admission(raw, "unlabeled", ""))
	if err != nil || again.Pod == nil || again.Current != nil {
		t.Fatalf("the 1-31 sidecar was kept under 1-32: %q, current %v, %v", again.Decision.Reasons, again.Current, err)
	}
	if !strings.Contains(strings.Join(again.Decision.Reasons, "\n"), "injected by revision 1-31") {
		t.Errorf("the reasons do not say why it is re-injected: %q", again.Decision.Reasons)
	}
	if rev := again.Pod["metadata"].(map[string]any)["annotations"].(map[string]any)["istio.io/rev"]; rev != "1-32" {
		t.Errorf("istio.io/rev = %v after re-injection, want 1-32", rev)
	}

	var p corev1.Pod
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p.Namespace = "unlabeled"
	r, err := audit.Run(t.Context(), set, []corev1.Pod{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].State != audit.StateOutdated || r.Findings[0].Want.Rev != "1-32" {
		t.Fatalf("audit: %+v", r.Findings)
	}
}
