package revisions_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// namespaces gives each namespace its own labels.
type namespaces map[string]map[string]string

func (n namespaces) Namespace(_ context.Context, name string) (cluster.Namespace, error) {
	return cluster.Namespace{Name: name, Labels: n[name], Annotations: map[string]string{}}, nil
}

func (namespaces) Synced() bool { return true }

var testNamespaces = namespaces{
	"switched":  {"istio-injection": "enabled"},
	"prod":      {"istio.io/rev": "prod"},
	"canary":    {"rego-injector.io/rev": "canary"},
	"pinned":    {"istio.io/rev": "1-32"},
	"bogus":     {"istio.io/rev": "1-99", "rego-injector.io/require-sidecar": "true"},
	"unlabeled": {},
}

func newRouter(tb testing.TB) *revisions.Router {
	tb.Helper()
	name, module, err := regoinjector.SelectionPolicy()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := revisions.NewRouter(tb.Context(), name, module)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// twoRevisions serves revisions 1-31 (bundle revision one-1) and 1-32 (two-1), with memos.
func twoRevisions(tb testing.TB, tags revisions.Tags) *revisions.Set {
	tb.Helper()
	revs := map[string]*injector.Injector{}
	for name, rev := range map[string]string{"1-31": "one-1", "1-32": "two-1"} {
		inj := injector.New(testNamespaces, injector.WithOwnNamespace(fixture.OwnNamespace), injector.WithMemo(16))
		if err := inj.Activate(fixture.Policy(tb, rev)); err != nil {
			tb.Fatal(err)
		}
		revs[name] = inj
	}
	set, err := revisions.NewSet(newRouter(tb), revs, tags, testNamespaces)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func pod(labels string) []byte {
	return []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{` + labels + `}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
}

func TestEachNamespaceGetsTheRevisionItsLabelsName(t *testing.T) {
	tags := revisions.StaticTags{"prod": "1-31", "canary": "1-32", "default": "1-31"}
	set := twoRevisions(t, tags)
	for _, c := range []struct {
		namespace, labels, rev, tag, bundle string
	}{
		{"switched", ``, "1-31", "default", "one-1"},
		{"prod", ``, "1-31", "prod", "one-1"},
		{"canary", ``, "1-32", "canary", "two-1"},
		{"pinned", ``, "1-32", "", "two-1"},
		{"unlabeled", `"istio.io/rev":"canary"`, "1-32", "canary", "two-1"},
		{"prod", `"istio.io/rev":"canary"`, "1-31", "prod", "one-1"}, // the namespace wins, as in Istio
	} {
		res, err := set.Inject(t.Context(), fixture.Admission(pod(c.labels), c.namespace, ""))
		if err != nil {
			t.Fatalf("%s: %v", c.namespace, err)
		}
		if res.Patch == nil || res.Selection == nil || res.Selection.Name != c.rev || res.Selection.Tag != c.tag || res.Revision != c.bundle {
			t.Fatalf("%s %s: got revision %+v bundle %s patch %t, want %s tag %q bundle %s; reasons %q",
				c.namespace, c.labels, res.Selection, res.Revision, res.Patch != nil, c.rev, c.tag, c.bundle, res.Decision.Reasons)
		}
		patched := fixture.ApplyPatch(t, pod(c.labels), res.Patch)
		st, ok, err := inject.ReadStatus(decode(t, patched))
		if !ok || err != nil || st.Rev != c.rev || st.Tag != c.tag || st.Revision != c.bundle {
			t.Fatalf("%s: status %+v (%v), want rev %s tag %q", c.namespace, st, err, c.rev, c.tag)
		}
		if !strings.Contains(string(patched), `"istio.io/rev":"`+c.rev+`"`) {
			t.Fatalf("%s: the pod's istio.io/rev annotation does not name %s: %s", c.namespace, c.rev, patched)
		}
	}
}

func TestMovingATagMovesTheNextPod(t *testing.T) {
	tags := revisions.StaticTags{"prod": "1-31"}
	set := twoRevisions(t, tags)
	a := fixture.Admission(pod(``), "prod", "")
	first, err := set.Inject(t.Context(), a)
	if err != nil || first.Selection.Name != "1-31" {
		t.Fatalf("before the move: %+v, %v", first.Selection, err)
	}
	tags["prod"] = "1-32"
	second, err := set.Inject(t.Context(), a)
	if err != nil || second.Selection.Name != "1-32" || second.Revision != "two-1" || second.Patch == nil {
		t.Fatalf("after the move: %+v bundle %s, %v", second.Selection, second.Revision, err)
	}
}

func TestAnUnknownNameIsNotInjectedAndSaysSo(t *testing.T) {
	set := twoRevisions(t, revisions.StaticTags{})
	res, err := set.Inject(t.Context(), fixture.Admission(pod(``), "bogus", ""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Patch != nil || res.Decision.Inject || res.Decision.Code != "unknown_revision" {
		t.Fatalf("a pod naming no served revision was answered: %+v", res)
	}
	if len(res.Decision.Warnings) != 1 || !strings.Contains(res.Decision.Warnings[0], `names revision "1-99", but no revision or tag has that name (revisions: 1-31, 1-32; tags: none)`) {
		t.Fatalf("warnings %q", res.Decision.Warnings)
	}
}

func TestAnUnknownNameDoesNotDodgeValidation(t *testing.T) {
	set := twoRevisions(t, revisions.StaticTags{"default": "1-31"})
	res, err := set.Validate(t.Context(), fixture.Admission(pod(``), "bogus", ""))
	if err != nil {
		t.Fatal(err)
	}
	v := res.Verdict
	if len(v.Deny) == 0 || res.Revision != "one-1" || res.Selection.Name != "1-31" || res.Selection.Tag != "default" {
		t.Fatalf("a pod without a sidecar in a require-sidecar namespace naming an unknown revision was admitted by %q (%+v): %+v", res.Revision, res.Selection, v)
	}
	if len(v.Warn) == 0 || !strings.Contains(v.Warn[0], `"1-99"`) {
		t.Fatalf("the selection's warning is not among the verdict's: %q", v.Warn)
	}
}

func TestForcedRevision(t *testing.T) {
	set := twoRevisions(t, revisions.StaticTags{}).Forced("1-32")
	res, err := set.Inject(t.Context(), fixture.Admission(pod(`"istio.io/rev":"1-31"`), "unlabeled", ""))
	if err != nil || res.Selection.Name != "1-32" || res.Patch == nil {
		t.Fatalf("--revision 1-32: %+v patch %t, %v", res.Selection, res.Patch != nil, err)
	}
	// --revision chooses which revision answers, not whether the pod is injected at all.
	res, err = set.Inject(t.Context(), fixture.Admission(pod(""), "unlabeled", ""))
	if err != nil || res.Selection.Name != "1-32" || !res.Selection.Forced || res.Patch != nil || res.Decision.Code != "namespace_not_enabled" {
		t.Fatalf("--revision 1-32 on a pod nothing enables: %+v %q patch %t, %v", res.Selection, res.Decision.Code, res.Patch != nil, err)
	}
}

// A revision's memo must not answer a pod with the answer it gave the same pod chosen otherwise:
// the reasons and the status say how it was chosen.
func TestMemoKeepsSelectionsApart(t *testing.T) {
	set := twoRevisions(t, revisions.StaticTags{})
	a := fixture.Admission(pod(`"istio.io/rev":"1-32"`), "unlabeled", "")
	byLabel, err := set.Inject(t.Context(), a)
	if err != nil || byLabel.Patch == nil {
		t.Fatalf("by label: %+v, %v", byLabel, err)
	}
	forced, err := set.Forced("1-32").Inject(t.Context(), a)
	if err != nil || !forced.Selection.Forced || !strings.HasSuffix(forced.Decision.Reasons[0], "--revision chooses revision 1-32") {
		t.Fatalf("the same pod chosen by --revision was answered from the memo of its label's choice: %q, %v", forced.Decision.Reasons, err)
	}
}

func TestRouterRefusesAnAnswerOfTheWrongShape(t *testing.T) {
	const keys = "switch_keys := [\"istio-injection\"]\nrev_keys := [\"istio.io/rev\"]\n"
	r, err := revisions.NewRouter(t.Context(), "bad.rego", []byte("package revisions\n\nselection := \"1-31\"\n"+keys))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Select(t.Context(), revisions.Input{}); err == nil || !strings.Contains(err.Error(), "is not {revision") {
		t.Fatalf("got %v", err)
	}
	if _, err := revisions.NewRouter(t.Context(), "broken.rego", []byte("package revisions\nselection :=")); err == nil {
		t.Fatal("a module that does not parse was compiled")
	}
	// The keys it reads are what its answers are remembered by: a policy must name them.
	for module, want := range map[string]string{
		"package revisions\n\nselection := {}\n":                                     "switch_keys is undefined",
		"package revisions\n\nselection := {}\nswitch_keys := [1]\nrev_keys := []\n": "switch_keys = [1]: want a list of label keys",
	} {
		if _, err := revisions.NewRouter(t.Context(), "keys.rego", []byte(module)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", module, err, want)
		}
	}
}

func decode(tb testing.TB, raw []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkSelect is what choosing the revision adds to every admission: the pod's labels
// decoded, the namespace looked up and the selection policy evaluated.
func BenchmarkSelect(b *testing.B) {
	for _, name := range []string{"typical", "large"} {
		b.Run(name, func(b *testing.B) {
			raw, err := os.ReadFile(filepath.Join("..", "injector", "testdata", "bench", name+".json"))
			if err != nil {
				b.Fatal(err)
			}
			set := twoRevisions(b, revisions.StaticTags{"prod": "1-31"})
			a := fixture.Admission(raw, "prod", "")
			b.ReportAllocs()
			for b.Loop() {
				if _, inj, err := set.Select(b.Context(), a); err != nil || inj == nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestARevisionWithoutABundle: a revision that has no active bundle yet keeps the set unready
// unless it is excused (its source failed), and its pods get an error that names it, while the
// other revision answers.
func TestARevisionWithoutABundle(t *testing.T) {
	ready := injector.New(testNamespaces, injector.WithOwnNamespace(fixture.OwnNamespace))
	if err := ready.Activate(fixture.Policy(t, "one-1")); err != nil {
		t.Fatal(err)
	}
	revs := map[string]*injector.Injector{"1-31": ready, "1-32": injector.New(testNamespaces)}
	set, err := revisions.NewSet(newRouter(t), revs, revisions.StaticTags{}, testNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	if set.Ready(nil) {
		t.Error("ready while 1-32 has no bundle")
	}
	if !set.Ready(func(name string) bool { return name == "1-32" }) {
		t.Error("not ready with 1-32 excused")
	}
	if _, err := set.Inject(t.Context(), fixture.Admission(pod(``), "pinned", "")); !errors.Is(err, injector.ErrNotActive) || !strings.HasPrefix(err.Error(), "revision 1-32: ") {
		t.Errorf("a pod of 1-32: %v", err)
	}
	if res, err := set.Inject(t.Context(), fixture.Admission(pod(`"istio.io/rev":"1-31"`), "unlabeled", "")); err != nil || res.Patch == nil {
		t.Errorf("a pod of 1-31: %v", err)
	}
}

func TestResolve(t *testing.T) {
	set := twoRevisions(t, revisions.StaticTags{"prod": "1-31", "1-32": "1-31", "stale": "1-20"})
	for _, c := range []struct{ name, rev, tag, err string }{
		{"1-31", "1-31", "", ""},
		{"prod", "1-31", "prod", ""},
		{"1-32", "1-31", "1-32", ""}, // a tag wins over the revision of its name, as in selection
		{"stale", "", "", "tag stale points at revision 1-20, which is not served (revisions: 1-31, 1-32)"},
		{"1-33", "", "", "1-33: no revision or tag has that name (revisions: 1-31, 1-32; tags: 1-32 -> 1-31, prod -> 1-31, stale -> 1-20)"},
	} {
		rev, tag, err := set.Resolve(c.name)
		if rev != c.rev || tag != c.tag || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("Resolve(%q) = %q, %q, %v; want %q, %q, %q", c.name, rev, tag, err, c.rev, c.tag, c.err)
		}
	}
}

func TestNewSetRefusesNoRevisions(t *testing.T) {
	if _, err := revisions.NewSet(newRouter(t), nil, nil, testNamespaces); err == nil {
		t.Error("a set of no revisions was made")
	}
	if _, err := revisions.NewSet(newRouter(t), map[string]*injector.Injector{"default": nil}, nil, testNamespaces); err == nil {
		t.Error("a set with a revision of no injector was made")
	}
}
