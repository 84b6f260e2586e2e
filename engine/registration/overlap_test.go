package registration

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var baseWebhooks = filepath.Join("..", "..", "deploy", "base", "webhooks.yaml")

// ours is every configuration of ours: the shipped main one, revisions 1-31 and canary, tag prod.
func ours(t *testing.T) []admissionregistrationv1.MutatingWebhookConfiguration {
	return append(readConfigs(t, baseWebhooks), generated(t, Revision, "1-31"), generated(t, Revision, "canary"), generated(t, Tag, "prod"))
}

func namespace(name string, labels map[string]string) corev1.Namespace {
	l := map[string]string{NamespaceNameLabel: name}
	for k, v := range labels {
		l[k] = v
	}
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

// pairs lists the overlaps as "first × second", and checks each witness against both entries'
// selectors, and each namespace listed.
func pairs(t *testing.T, s State, r Report) []string {
	t.Helper()
	webhooks := map[string]admissionregistrationv1.MutatingWebhook{}
	for _, c := range s.Configurations {
		for _, w := range c.Webhooks {
			webhooks[c.Name+"/"+w.Name] = w
		}
	}
	var out []string
	for _, o := range r.Overlaps {
		a, b := webhooks[o.First.String()], webhooks[o.Second.String()]
		if !matchesAll(t, o.NamespaceLabels, a.NamespaceSelector, b.NamespaceSelector) || !matchesAll(t, o.PodLabels, a.ObjectSelector, b.ObjectSelector) {
			t.Errorf("%s × %s: witness namespace %v, pod %v does not match both", o.First, o.Second, o.NamespaceLabels, o.PodLabels)
		}
		if o.NamespaceLabels[NamespaceNameLabel] == "" {
			t.Errorf("%s × %s: the witness namespace has no name", o.First, o.Second)
		}
		for _, n := range s.Namespaces {
			both := matchesAll(t, n.Labels, a.NamespaceSelector, b.NamespaceSelector)
			if both != slices.Contains(o.Namespaces, n.Name) {
				t.Errorf("%s × %s: namespace %s matches both: %v, yet listed: %v", o.First, o.Second, n.Name, both, o.Namespaces)
			}
		}
		out = append(out, o.First.String()+" × "+o.Second.String())
	}
	return out
}

// TestOursAreDisjoint: the main configuration and those of revisions and tags never send one pod
// to two entries, of one configuration or of two.
func TestOursAreDisjoint(t *testing.T) {
	s := State{Configurations: ours(t)}
	r := Check(s)
	if len(r.Entries) != 3+3*4 {
		t.Errorf("%d injector entries, want 15: %v", len(r.Entries), r.Entries)
	}
	if got := pairs(t, s, r); len(got) != 0 {
		t.Errorf("overlaps among our own configurations: %v\n%+v", got, r.Overlaps)
	}
}

// TestPrecedence: across all our configurations, the one entry (or none) each pod goes to; the
// table of docs/webhook-configurations.md.
func TestPrecedence(t *testing.T) {
	configs := ours(t)
	for _, tc := range []struct {
		name      string
		namespace map[string]string
		pod       map[string]string
		want      string
	}{
		{"switch on", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, map[string]string{"rego-injector.io/rev": "1-31"}, "rego-injector/inject.rego-injector.io"},
		{"our switch on", map[string]string{"rego-injector.io/inject": "enabled", "rego-injector.io/rev": "canary"}, nil, "rego-injector/inject-ours.rego-injector.io"},
		{"switch off", map[string]string{"istio-injection": "disabled", "istio.io/rev": "canary"}, map[string]string{"istio.io/rev": "prod"}, ""},
		{"namespace, ours over Istio's", map[string]string{"rego-injector.io/rev": "1-31", "istio.io/rev": "canary"}, nil, "rego-injector-rev-1-31/rev.namespace.rego-injector.io"},
		{"namespace, Istio's", map[string]string{"istio.io/rev": "prod"}, map[string]string{"rego-injector.io/rev": "canary"}, "rego-injector-tag-prod/istio-rev.namespace.rego-injector.io"},
		{"pod, ours over Istio's", nil, map[string]string{"rego-injector.io/rev": "canary", "istio.io/rev": "prod"}, "rego-injector-rev-canary/rev.object.rego-injector.io"},
		{"pod, Istio's", nil, map[string]string{"istio.io/rev": "1-31"}, "rego-injector-rev-1-31/istio-rev.object.rego-injector.io"},
		{"pod opts in", nil, map[string]string{"sidecar.istio.io/inject": "true"}, "rego-injector/inject-optional.rego-injector.io"},
		{"unlabelled", nil, nil, "rego-injector/inject-optional.rego-injector.io"},
		{"pod opts out", map[string]string{"istio.io/rev": "canary"}, map[string]string{"sidecar.istio.io/inject": "false"}, ""},
		{"a revision nobody routes", map[string]string{"istio.io/rev": "1-30"}, nil, ""},
		{"system namespace", map[string]string{NamespaceNameLabel: "kube-system", "istio.io/rev": "canary"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range configs {
				for _, w := range c.Webhooks {
					if matchesAll(t, withName(tc.namespace), w.NamespaceSelector) && matchesAll(t, tc.pod, w.ObjectSelector) {
						got = append(got, c.Name+"/"+w.Name)
					}
				}
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("sent to %v, want %q", got, tc.want)
			}
		})
	}
}

// TestIstioOverlapsBase: Istio's default configuration beside ours sends pods to both injectors,
// each overlap found with a witness.
func TestIstioOverlapsBase(t *testing.T) {
	s := State{
		Configurations: append(readConfigs(t, baseWebhooks), readConfigs(t, filepath.Join("testdata", "istio-sidecar-injector.yaml"))...),
		Namespaces: []corev1.Namespace{
			namespace("web", map[string]string{"istio-injection": "enabled"}),
			namespace("plain", nil),
			namespace("kube-system", map[string]string{"istio-injection": "enabled"}),
		},
	}
	r := Check(s)
	got := pairs(t, s, r)
	want := []string{
		"rego-injector/inject.rego-injector.io × istio-sidecar-injector/namespace.sidecar-injector.istio.io",
		"rego-injector/inject-ours.rego-injector.io × istio-sidecar-injector/rev.namespace.sidecar-injector.istio.io",
		"rego-injector/inject-ours.rego-injector.io × istio-sidecar-injector/rev.object.sidecar-injector.istio.io",
		"rego-injector/inject-ours.rego-injector.io × istio-sidecar-injector/object.sidecar-injector.istio.io",
		"rego-injector/inject-optional.rego-injector.io × istio-sidecar-injector/object.sidecar-injector.istio.io",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("overlaps\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := r.Overlaps[0]
	if first.NamespaceLabels["istio-injection"] != "enabled" || len(first.PodLabels) != 0 || !slices.Equal(first.Namespaces, []string{"web"}) {
		t.Errorf("istio-injection=enabled: witness %v %v, namespaces %v", first.NamespaceLabels, first.PodLabels, first.Namespaces)
	}
	last := r.Overlaps[4]
	if last.PodLabels["sidecar.istio.io/inject"] != "true" || !slices.Equal(last.Namespaces, []string{"plain"}) {
		t.Errorf("opted-in pod: witness %v %v, namespaces %v", last.NamespaceLabels, last.PodLabels, last.Namespaces)
	}
	if last.First.Owner != OwnerRegoInjector || last.Second.Owner != OwnerIstio {
		t.Errorf("owners %s, %s", last.First.Owner, last.Second.Owner)
	}
}

// TestDeliberateOverlap: a configuration of ours that takes istio.io/rev=canary namespaces whatever
// else they carry overlaps canary's own entry, the main configuration's switch entries, and the
// entries of every revision and tag for our own label, which wins over Istio's.
func TestDeliberateOverlap(t *testing.T) {
	rogue := admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "team-injector", Labels: map[string]string{NameLabel: Name}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:              "team.example.com",
			Rules:             generated(t, Revision, "x").Webhooks[0].Rules,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio.io/rev": "canary"}},
			ObjectSelector:    sel(req("team", exists)),
			MatchConditions:   []admissionregistrationv1.MatchCondition{{Name: "not-host-network", Expression: "true"}},
		}},
	}
	s := State{
		Configurations: append(ours(t), rogue),
		Namespaces:     []corev1.Namespace{namespace("canary-apps", map[string]string{"istio.io/rev": "canary"}), namespace("other", nil)},
	}
	r := Check(s)
	got := pairs(t, s, r)
	want := []string{
		"rego-injector/inject.rego-injector.io × team-injector/team.example.com",
		"rego-injector/inject-ours.rego-injector.io × team-injector/team.example.com",
		"rego-injector-rev-1-31/rev.namespace.rego-injector.io × team-injector/team.example.com",
		"rego-injector-rev-canary/rev.namespace.rego-injector.io × team-injector/team.example.com",
		"rego-injector-rev-canary/istio-rev.namespace.rego-injector.io × team-injector/team.example.com",
		"rego-injector-tag-prod/rev.namespace.rego-injector.io × team-injector/team.example.com",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("overlaps\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := r.Overlaps[2]; w.NamespaceLabels["rego-injector.io/rev"] != "1-31" || w.NamespaceLabels["istio.io/rev"] != "canary" {
		t.Errorf("the overlap with 1-31's entry: witness %v", w.NamespaceLabels)
	}
	canary := r.Overlaps[4]
	if canary.First.Configuration != "rego-injector-rev-canary" || canary.NamespaceLabels["istio.io/rev"] != "canary" ||
		canary.PodLabels["team"] == "" || !slices.Equal(canary.Namespaces, []string{"canary-apps"}) {
		t.Errorf("the overlap with canary: %+v", canary)
	}
	if !slices.Equal(canary.Second.MatchConditions, []string{"not-host-network"}) {
		t.Errorf("matchConditions %v not reported", canary.Second.MatchConditions)
	}
}

// TestIstioDeactivated: entries Istio switched off overlap nothing, unless a real namespace carries
// the label Istio trusts no one to set.
func TestIstioDeactivated(t *testing.T) {
	istio := readConfigs(t, filepath.Join("testdata", "istio-sidecar-injector.yaml"))[0]
	never := &metav1.LabelSelector{MatchLabels: map[string]string{DeactivatedLabel: "never-match"}}
	for i := range istio.Webhooks {
		istio.Webhooks[i].NamespaceSelector, istio.Webhooks[i].ObjectSelector = never, never
	}
	s := State{Configurations: append(readConfigs(t, baseWebhooks), istio)}
	if got := pairs(t, s, Check(s)); len(got) != 0 {
		t.Errorf("deactivated entries overlap: %v", got)
	}
	s.Namespaces = []corev1.Namespace{namespace("odd", map[string]string{DeactivatedLabel: "never-match", "istio-injection": "enabled"})}
	// Then every two of the four overlap, and inject.rego-injector.io each of them.
	got := pairs(t, s, Check(s))
	if len(got) != 4+6 || !slices.Contains(got, "rego-injector/inject.rego-injector.io × istio-sidecar-injector/namespace.sidecar-injector.istio.io") ||
		!slices.Contains(got, "istio-sidecar-injector/rev.namespace.sidecar-injector.istio.io × istio-sidecar-injector/object.sidecar-injector.istio.io") {
		t.Errorf("a namespace labelled %s: overlaps %v", DeactivatedLabel, got)
	}
}

func TestCoversPodCreate(t *testing.T) {
	rule := func(ops []admissionregistrationv1.OperationType, groups, versions, resources []string, scope admissionregistrationv1.ScopeType) admissionregistrationv1.RuleWithOperations {
		r := admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources}}
		if scope != "" {
			r.Scope = &scope
		}
		return r
	}
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	core, v1, pods := []string{""}, []string{"v1"}, []string{"pods"}
	for _, tc := range []struct {
		name string
		rule admissionregistrationv1.RuleWithOperations
		want bool
	}{
		{"pods", rule(create, core, v1, pods, ""), true},
		{"namespaced", rule(create, core, v1, pods, admissionregistrationv1.NamespacedScope), true},
		{"any scope", rule(create, core, v1, pods, admissionregistrationv1.AllScopes), true},
		{"cluster scope", rule(create, core, v1, pods, admissionregistrationv1.ClusterScope), false},
		{"every operation", rule([]admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}, core, v1, pods, ""), true},
		{"update only", rule([]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, core, v1, pods, ""), false},
		{"every group, version, resource", rule(create, []string{"*"}, []string{"*"}, []string{"*"}, ""), true},
		{"every resource and subresource", rule(create, core, v1, []string{"*/*"}, ""), true},
		{"subresources of pods", rule(create, core, v1, []string{"pods/*"}, ""), false},
		{"another group", rule(create, []string{"apps"}, v1, []string{"*"}, ""), false},
		{"another version", rule(create, core, []string{"v2"}, pods, ""), false},
		{"other resources", rule(create, core, v1, []string{"services", "pods/ephemeralcontainers"}, ""), false},
	} {
		if got := coversPodCreate([]admissionregistrationv1.RuleWithOperations{tc.rule}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEntries(t *testing.T) {
	base := readConfigs(t, baseWebhooks)[0]
	unlabelled := *base.DeepCopy()
	unlabelled.Name, unlabelled.Labels = "copy", nil
	other := admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "mutate.example.com", Rules: base.Webhooks[0].Rules}},
	}
	notPods := *base.DeepCopy()
	notPods.Name = "services"
	for i := range notPods.Webhooks {
		notPods.Webhooks[i].Rules[0].Resources = []string{"services"}
	}
	broken := *base.DeepCopy()
	broken.Name = "broken"
	broken.Webhooks = broken.Webhooks[:1]
	broken.Webhooks[0].ObjectSelector = sel(req("a", "Gt", "1"))
	entries, warnings := Entries([]admissionregistrationv1.MutatingWebhookConfiguration{base, unlabelled, other, notPods, broken})
	var got []string
	for _, e := range entries {
		got = append(got, e.String())
	}
	want := []string{"rego-injector/inject.rego-injector.io", "rego-injector/inject-ours.rego-injector.io", "rego-injector/inject-optional.rego-injector.io"}
	if !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	if len(warnings) != 1 || warnings[0].Configuration != "broken" {
		t.Errorf("warnings %+v, want one for the unreadable selector", warnings)
	}
}

func TestWarnings(t *testing.T) {
	s := State{
		Configurations: ours(t),
		Namespaces: []corev1.Namespace{
			namespace("both", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}),
			namespace("routed", map[string]string{"istio.io/rev": "canary"}),
			namespace("routed-tag", map[string]string{"rego-injector.io/rev": "prod"}),
			namespace("nowhere", map[string]string{"istio.io/rev": "1-30"}),
			namespace("tag-without-configuration", map[string]string{"istio.io/rev": "stable"}),
			namespace("plain", nil),
		},
		Tags: map[string]string{"stable": "1-31"},
	}
	r := Check(s)
	var got []string
	for _, w := range r.Warnings {
		got = append(got, w.Namespace+w.Configuration+": "+w.Message)
	}
	want := []string{"both: istio-injection=enabled wins over istio.io/rev=canary",
		"nowhere: istio.io/rev=1-30: no injector entry takes this namespace",
		"tag-without-configuration: istio.io/rev=stable: no injector entry takes this namespace, its pods get no sidecar (the tags ConfigMap maps tag stable to revision 1-31",
		"rego-injector-tag-prod: routes tag prod, which the tags ConfigMap",
		": tag stable points at revision 1-31 in the tags ConfigMap, but no configuration rego-injector-tag-stable routes it"}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n%s\nwant it to start with\n%s", i, got[i], want[i])
		}
	}
	if len(r.Overlaps) != 0 {
		t.Errorf("overlaps %v", r.Overlaps)
	}
}
