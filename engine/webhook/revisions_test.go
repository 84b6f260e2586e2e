package webhook_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/revisions"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// TestRevisionsAreNamed: with named revisions, the admission metric, the decision log and the
// audit annotations name the revision and the tag that answered, and a pod naming no revision is
// admitted unchanged with the selection's warning.
func TestRevisionsAreNamed(t *testing.T) {
	name, module, err := regoinjector.SelectionPolicy()
	if err != nil {
		t.Fatal(err)
	}
	router, err := revisions.NewRouter(t.Context(), name, module)
	if err != nil {
		t.Fatal(err)
	}
	ns := cluster.Static{Labels: map[string]string{"istio.io/rev": "prod"}}
	revs := map[string]*injector.Injector{
		"1-31": fixture.Injector(t, fixture.Policy(t, "one-1"), nil),
		"1-32": fixture.Injector(t, fixture.Policy(t, "two-1"), nil),
	}
	set, err := revisions.NewSet(router, revs, revisions.StaticTags{"prod": "1-32"}, ns)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	var logBuf syncBuffer
	w := webhook.New(set, webhook.WithMetrics(m), webhook.WithDecisionLog(&logBuf))

	resp := w.Mutating().Handle(t.Context(), review(t, []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)))
	if !resp.Allowed || resp.Patch == nil {
		t.Fatalf("not injected: %+v", resp)
	}
	if resp.AuditAnnotations["rev"] != "1-32" || resp.AuditAnnotations["tag"] != "prod" || resp.AuditAnnotations["revision"] != "two-1" {
		t.Errorf("audit annotations %v", resp.AuditAnnotations)
	}
	if got := fixture.Counter(t, m, "rego_injector_admissions_total", map[string]string{"revision": "1-32", "result": "injected"}); got != 1 {
		t.Errorf("admissions{revision=1-32,result=injected} = %v", got)
	}
	var entry struct {
		Bundles map[string]map[string]string `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(logBuf.String())), &entry); err != nil {
		t.Fatal(err)
	}
	if b := entry.Bundles["1-32"]; b["revision"] != "two-1" || b["tag"] != "prod" || len(entry.Bundles) != 1 {
		t.Errorf("decision log bundles %v", entry.Bundles)
	}
	// The validating webhook names the revision that judged, too.
	logBuf.Reset()
	if resp := w.Validating().Handle(t.Context(), review(t, []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`))); !resp.Allowed {
		t.Fatalf("validation: %+v", resp)
	}
	entry.Bundles = nil
	if err := json.Unmarshal([]byte(strings.TrimSpace(logBuf.String())), &entry); err != nil {
		t.Fatal(err)
	}
	if b := entry.Bundles["1-32"]; b["revision"] != "two-1" || b["tag"] != "prod" || len(entry.Bundles) != 1 {
		t.Errorf("validation's decision log bundles %v", entry.Bundles)
	}
	if got := fixture.Counter(t, m, "rego_injector_admissions_total", map[string]string{"endpoint": "validate", "revision": "1-32"}); got != 1 {
		t.Errorf("admissions{endpoint=validate,revision=1-32} = %v", got)
	}

	// A pod label the namespace's overrides is reported; in an unlabelled namespace, a name that
	// matches nothing is a warning and no sidecar.
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"rego-injector.io/rev":"9-99"}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
	resp = w.Mutating().Handle(t.Context(), review(t, pod))
	if resp.Patch == nil || !slices.Contains(resp.Warnings, `pod label rego-injector.io/rev="9-99" is not read: namespace "default" label istio.io/rev decides`) {
		t.Errorf("a pod label the namespace overrides: patch %t, warnings %q", resp.Patch != nil, resp.Warnings)
	}
	unlabelledSet, err := revisions.NewSet(router, revs, revisions.StaticTags{"prod": "1-32"}, cluster.Static{})
	if err != nil {
		t.Fatal(err)
	}
	unlabelled := webhook.New(unlabelledSet, webhook.WithMetrics(m))
	resp = unlabelled.Mutating().Handle(t.Context(), review(t, pod))
	if !resp.Allowed || resp.Patch != nil || !strings.Contains(strings.Join(resp.Warnings, "\n"), `"9-99", but no revision or tag has that name`) {
		t.Fatalf("a pod naming no revision: allowed %t, patch %t, warnings %q", resp.Allowed, resp.Patch != nil, resp.Warnings)
	}
	if got := fixture.Counter(t, m, "rego_injector_admissions_total", map[string]string{"revision": "", "reason": "unknown_revision"}); got != 1 {
		t.Errorf("admissions{reason=unknown_revision} = %v", got)
	}
}
