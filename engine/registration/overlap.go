package registration

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// Owners of the injector entries Check compares.
const (
	OwnerRegoInjector = "rego-injector"
	OwnerIstio        = "istio"
)

// istioEntrySuffix ends the name of every sidecar-injector entry Istio writes (namespace., object.,
// rev.namespace., rev.object., auto., or none before it in old releases).
const istioEntrySuffix = "sidecar-injector.istio.io"

// DeactivatedLabel is how Istio switches off the entries of a configuration it keeps (istioctl tag
// set default): both selectors become istio.io/deactivated=never-match, a label Istio trusts no
// object to carry.
const DeactivatedLabel = "istio.io/deactivated"

// State is what Check reads from a cluster.
type State struct {
	Configurations []admissionregistrationv1.MutatingWebhookConfiguration
	Namespaces     []corev1.Namespace
	// Tags is the data of the tags ConfigMap (revisions.TagsConfigMap), tag → revision; nil when it
	// does not exist.
	Tags map[string]string
}

// Entry is one injector entry: a webhook of a mutating configuration that sees pods created.
type Entry struct {
	Configuration string `json:"configuration"`
	Webhook       string `json:"webhook"`
	Owner         string `json:"owner"`
	// MatchConditions names the entry's CEL conditions, which Check cannot judge: an overlap of
	// such an entry is one unless its conditions keep the pod out.
	MatchConditions []string `json:"matchConditions,omitempty"`

	namespaceSelector, objectSelector *metav1.LabelSelector
	namespaces                        labels.Selector // namespaceSelector, to match real namespaces
}

func (e Entry) String() string { return e.Configuration + "/" + e.Webhook }

// Overlap is two injector entries the apiserver would both call for one pod, and that pod.
type Overlap struct {
	First  Entry `json:"first"`
	Second Entry `json:"second"`
	// NamespaceLabels and PodLabels are a witness: a pod with PodLabels created in a namespace with
	// NamespaceLabels is sent to both entries. Only the labels that matter are there.
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	// Namespaces are the cluster's namespaces both namespace selectors match now.
	Namespaces []string `json:"namespaces"`
}

// Warning is a finding that sends no pod twice but is likely a mistake.
type Warning struct {
	Namespace     string `json:"namespace,omitempty"`
	Configuration string `json:"configuration,omitempty"`
	Message       string `json:"message"`
}

// Report is what Check found.
type Report struct {
	Entries  []Entry   `json:"entries"`
	Overlaps []Overlap `json:"overlaps"`
	Warnings []Warning `json:"warnings"`
}

// Entries returns the injector entries of the configurations: every webhook of a configuration
// labelled app.kubernetes.io/name=rego-injector, and every webhook named *sidecar-injector.istio.io,
// whose rules cover creating pods. An entry whose selectors cannot be read comes back as a warning
// instead.
func Entries(configs []admissionregistrationv1.MutatingWebhookConfiguration) ([]Entry, []Warning) {
	var entries []Entry
	var warnings []Warning
	for _, c := range configs {
		for _, w := range c.Webhooks {
			owner := ""
			switch {
			case c.Labels[NameLabel] == Name:
				owner = OwnerRegoInjector
			case strings.HasSuffix(w.Name, istioEntrySuffix):
				owner = OwnerIstio
			}
			if owner == "" || !coversPodCreate(w.Rules) {
				continue
			}
			e := Entry{Configuration: c.Name, Webhook: w.Name, Owner: owner, namespaceSelector: w.NamespaceSelector, objectSelector: w.ObjectSelector}
			for _, mc := range w.MatchConditions {
				e.MatchConditions = append(e.MatchConditions, mc.Name)
			}
			var err error
			if e.namespaces, err = asSelector(w.NamespaceSelector); err == nil {
				_, err = asSelector(w.ObjectSelector)
			}
			if err != nil {
				warnings = append(warnings, Warning{Configuration: c.Name, Message: fmt.Sprintf("entry %s left out: %v", w.Name, err)})
				continue
			}
			entries = append(entries, e)
		}
	}
	return entries, warnings
}

// asSelector is the selector of a webhook entry; nil (the apiserver defaults it to {}) matches
// everything.
func asSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSelector, err)
	}
	return sel, nil
}

// coversPodCreate reports whether some rule matches creating a pod: operation CREATE or *, group ""
// or *, version v1 or *, resource pods, * or */*, scope Namespaced or * (or unset, which is *).
func coversPodCreate(rules []admissionregistrationv1.RuleWithOperations) bool {
	for _, r := range rules {
		ops := slices.ContainsFunc(r.Operations, func(o admissionregistrationv1.OperationType) bool {
			return o == admissionregistrationv1.Create || o == admissionregistrationv1.OperationAll
		})
		scope := r.Scope == nil || *r.Scope == admissionregistrationv1.AllScopes || *r.Scope == admissionregistrationv1.NamespacedScope
		if ops && scope && containsAny(r.APIGroups, "", "*") && containsAny(r.APIVersions, "v1", "*") && containsAny(r.Resources, "pods", "*", "*/*") {
			return true
		}
	}
	return false
}

func containsAny(list []string, want ...string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return slices.Contains(want, s) })
}

// Check finds every pair of injector entries that the apiserver could both call for one pod: the
// conjunction of their namespace selectors and that of their object selectors are both satisfiable.
// The answer is exact for the selectors; matchConditions are not judged (Entry.MatchConditions).
// Each overlap comes with a witness and the real namespaces where it happens now.
//
// Istio's deactivated entries (DeactivatedLabel) overlap with anything in principle, for a
// namespace and a pod labelled istio.io/deactivated=never-match. Istio relies on no object carrying
// that label, and so does Check: such an overlap is reported only when a real namespace carries it.
//
// Check also warns about namespaces that carry a switch label and a revision label (the switch
// wins), namespaces whose revision label no entry routes (their pods get no sidecar), and tags the
// ConfigMap and the configurations disagree on.
func Check(s State) Report {
	entries, warnings := Entries(s.Configurations)
	if entries == nil {
		entries = []Entry{}
	}
	r := Report{Entries: entries, Overlaps: []Overlap{}, Warnings: warnings}
	for i := range entries {
		for j := i + 1; j < len(entries); j++ {
			if o, ok := overlap(entries[i], entries[j], s.Namespaces); ok {
				r.Overlaps = append(r.Overlaps, o)
			}
		}
	}
	r.Warnings = append(r.Warnings, namespaceWarnings(entries, s)...)
	r.Warnings = append(r.Warnings, tagWarnings(s)...)
	if r.Warnings == nil {
		r.Warnings = []Warning{}
	}
	return r
}

// overlap decides whether a and b can both be called for one pod.
func overlap(a, b Entry, namespaces []corev1.Namespace) (Overlap, bool) {
	ns, conflict, err := NamespaceWitness(a.namespaceSelector, b.namespaceSelector)
	if err != nil || conflict != "" {
		return Overlap{}, false
	}
	pod, conflict, err := Witness(a.objectSelector, b.objectSelector)
	if err != nil || conflict != "" {
		return Overlap{}, false
	}
	o := Overlap{First: a, Second: b, NamespaceLabels: ns, PodLabels: pod, Namespaces: []string{}}
	for _, n := range namespaces {
		set := labels.Set(n.Labels)
		if a.namespaces.Matches(set) && b.namespaces.Matches(set) {
			o.Namespaces = append(o.Namespaces, n.Name)
		}
	}
	slices.Sort(o.Namespaces)
	_, nsDeactivated := ns[DeactivatedLabel]
	_, podDeactivated := pod[DeactivatedLabel]
	if (nsDeactivated || podDeactivated) && len(o.Namespaces) == 0 {
		return Overlap{}, false
	}
	return o, true
}

// namespaceWarnings looks at the revision labels of each namespace.
func namespaceWarnings(entries []Entry, s State) []Warning {
	var out []Warning
	for _, n := range slices.SortedFunc(slices.Values(s.Namespaces), func(a, b corev1.Namespace) int { return cmp.Compare(a.Name, b.Name) }) {
		var switches, revs []string
		for _, k := range []string{IstioInjectionLabel, InjectLabel} {
			if v, ok := n.Labels[k]; ok {
				switches = append(switches, k+"="+v)
			}
		}
		for _, k := range []string{revisions.RevLabel, revisions.IstioRevLabel} {
			if v, ok := n.Labels[k]; ok {
				revs = append(revs, k+"="+v)
			}
		}
		if len(revs) == 0 {
			continue
		}
		if len(switches) > 0 {
			out = append(out, Warning{Namespace: n.Name, Message: fmt.Sprintf("%s wins over %s, which is ignored: remove one",
				strings.Join(switches, " and "), strings.Join(revs, " and "))})
			continue
		}
		set := labels.Set(n.Labels)
		if slices.ContainsFunc(entries, func(e Entry) bool { return e.namespaces.Matches(set) }) {
			continue
		}
		name := n.Labels[revisions.RevLabel] // ours wins on the same object
		if name == "" {
			name = n.Labels[revisions.IstioRevLabel]
		}
		msg := fmt.Sprintf("%s: no injector entry takes this namespace, its pods get no sidecar", revs[0])
		if rev, ok := s.Tags[name]; ok {
			msg += fmt.Sprintf(" (the tags ConfigMap maps tag %s to revision %s, but no configuration %s routes it: run rego-injector tag set %s --revision %s)",
				name, rev, ConfigurationName(Tag, name), name, rev)
		} else {
			msg += fmt.Sprintf(" (no configuration %s or %s)", ConfigurationName(Revision, name), ConfigurationName(Tag, name))
		}
		out = append(out, Warning{Namespace: n.Name, Message: msg})
	}
	return out
}

// tagWarnings compares the tags of the ConfigMap with the tag configurations.
func tagWarnings(s State) []Warning {
	var out []Warning
	configured := map[string]string{} // tag → configuration
	for _, c := range s.Configurations {
		if c.Labels[NameLabel] != Name {
			continue
		}
		if tag, ok := c.Labels[revisions.TagLabel]; ok {
			configured[tag] = c.Name
			if _, named := s.Tags[tag]; !named {
				out = append(out, Warning{Configuration: c.Name, Message: fmt.Sprintf("routes tag %s, which the tags ConfigMap %s does not name: the injector cannot tell which revision answers", tag, revisions.TagsConfigMap)})
			}
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(s.Tags)) {
		if _, ok := configured[tag]; !ok {
			out = append(out, Warning{Message: fmt.Sprintf("tag %s points at revision %s in the tags ConfigMap, but no configuration %s routes it: pods labelled with it are not sent", tag, s.Tags[tag], ConfigurationName(Tag, tag))})
		}
	}
	return out
}
