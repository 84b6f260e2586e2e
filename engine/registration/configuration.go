package registration

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// Labels and names of the configurations this package writes and reads.
const (
	// NameLabel marks every webhook configuration of ours, the main one included.
	NameLabel = "app.kubernetes.io/name"
	// Name is NameLabel's value.
	Name = "rego-injector"
	// MainConfiguration is the configuration of deploy/base/webhooks.yaml: the switch labels
	// (istio-injection, rego-injector.io/inject) and the default tag.
	MainConfiguration = "rego-injector"
	// InjectPath is where the injector answers mutating admissions.
	InjectPath = "/inject"

	// IstioInjectionLabel and InjectLabel switch injection on (enabled) or off (disabled) for a
	// whole namespace; either present wins over every revision label.
	IstioInjectionLabel = "istio-injection"
	InjectLabel         = "rego-injector.io/inject"
	// PodInjectLabel "false" on a pod keeps it from every injector entry.
	PodInjectLabel = "sidecar.istio.io/inject"
)

// systemNamespaces are never sent to an injector; the injector's own namespace joins them.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// ErrName is returned for a revision or tag name that cannot name a configuration.
var ErrName = errors.New("invalid revision or tag name")

// Kind says whether a configuration routes the pods that name a revision or a tag.
type Kind string

const (
	// Revision: the configuration of a revision, rego-injector-rev-NAME.
	Revision Kind = "rev"
	// Tag: the configuration of a tag, rego-injector-tag-NAME.
	Tag Kind = "tag"
)

// label is the label that marks the configuration of one revision or tag of this kind.
func (k Kind) label() string {
	if k == Tag {
		return revisions.TagLabel
	}
	return revisions.RevisionLabel
}

// ConfigurationName is the name of the MutatingWebhookConfiguration of one revision or tag:
// rego-injector-rev-NAME or rego-injector-tag-NAME.
func ConfigurationName(kind Kind, name string) string {
	return Name + "-" + string(kind) + "-" + name
}

// ValidateName checks that name can be a revision or tag: a label value that also makes a valid
// object name, that is a DNS label (lowercase letters, digits and '-', at most 63 characters).
func ValidateName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("%w %q: %s", ErrName, name, strings.Join(errs, "; "))
	}
	return nil
}

// Options says where the configuration of one revision or tag sends pods.
type Options struct {
	// ClientConfig is how the apiserver reaches the injector: a Service (its path is InjectPath
	// when empty, its port 443) or a URL, and the caBundle.
	ClientConfig admissionregistrationv1.WebhookClientConfig
	// InjectorNamespace is never sent, with the system namespaces.
	InjectorNamespace string
	// Annotations go on the configuration as they are, e.g. cert-manager.io/inject-ca-from copied
	// from the main configuration so that cert-manager keeps this caBundle too.
	Annotations map[string]string
}

// ServiceClientConfig is the client configuration of the injector's Service at InjectPath, port 443.
func ServiceClientConfig(service, namespace string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	path, port := InjectPath, int32(443)
	return admissionregistrationv1.WebhookClientConfig{
		Service:  &admissionregistrationv1.ServiceReference{Name: service, Namespace: namespace, Path: &path, Port: &port},
		CABundle: caBundle,
	}
}

// Configuration returns the MutatingWebhookConfiguration that sends to the injector the pods that
// choose the revision or tag name, in four entries, each for one way of choosing it:
//
//	rev.namespace.rego-injector.io        namespace rego-injector.io/rev=NAME
//	istio-rev.namespace.rego-injector.io  namespace istio.io/rev=NAME, without rego-injector.io/rev
//	rev.object.rego-injector.io           pod rego-injector.io/rev=NAME, namespace without either label
//	istio-rev.object.rego-injector.io     pod istio.io/rev=NAME without rego-injector.io/rev, namespace likewise
//
// None takes a namespace carrying a switch label (istio-injection or rego-injector.io/inject): the
// main configuration has those. A pod labelled sidecar.istio.io/inject=false is never sent. So the
// entries of all revisions and tags and of the main configuration are disjoint: each pod goes to
// one of them at most (Check proves it).
func Configuration(kind Kind, name string, o Options) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	if kind != Revision && kind != Tag {
		return nil, fmt.Errorf("configuration kind %q: want %q or %q", kind, Revision, Tag)
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	cc := *o.ClientConfig.DeepCopy()
	if cc.Service != nil {
		if cc.Service.Path == nil || *cc.Service.Path == "" {
			p := InjectPath
			cc.Service.Path = &p
		}
		if cc.Service.Port == nil {
			p := int32(443)
			cc.Service.Port = &p
		}
	}
	excluded := slices.Clone(systemNamespaces)
	if o.InjectorNamespace != "" {
		excluded = append(excluded, o.InjectorNamespace)
	}
	notSystem := metav1.LabelSelectorRequirement{Key: NamespaceNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: excluded}
	is := func(key string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: []string{name}}
	}
	absent := func(key string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpDoesNotExist}
	}
	notOptedOut := metav1.LabelSelectorRequirement{Key: PodInjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}
	selectors := func(namespace []metav1.LabelSelectorRequirement, object ...metav1.LabelSelectorRequirement) (*metav1.LabelSelector, *metav1.LabelSelector) {
		namespace = append(namespace, absent(IstioInjectionLabel), absent(InjectLabel), notSystem)
		return &metav1.LabelSelector{MatchExpressions: namespace}, &metav1.LabelSelector{MatchExpressions: append(object, notOptedOut)}
	}
	entries := []struct {
		name     string
		ns, pods *metav1.LabelSelector
	}{
		{name: "rev.namespace." + Name + ".io"},
		{name: "istio-rev.namespace." + Name + ".io"},
		{name: "rev.object." + Name + ".io"},
		{name: "istio-rev.object." + Name + ".io"},
	}
	entries[0].ns, entries[0].pods = selectors([]metav1.LabelSelectorRequirement{is(revisions.RevLabel)})
	entries[1].ns, entries[1].pods = selectors([]metav1.LabelSelectorRequirement{is(revisions.IstioRevLabel), absent(revisions.RevLabel)})
	entries[2].ns, entries[2].pods = selectors([]metav1.LabelSelectorRequirement{absent(revisions.RevLabel), absent(revisions.IstioRevLabel)},
		is(revisions.RevLabel))
	entries[3].ns, entries[3].pods = selectors([]metav1.LabelSelectorRequirement{absent(revisions.RevLabel), absent(revisions.IstioRevLabel)},
		is(revisions.IstioRevLabel), absent(revisions.RevLabel))

	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ConfigurationName(kind, name),
			Labels: map[string]string{NameLabel: Name, kind.label(): name},
		},
	}
	if len(o.Annotations) > 0 {
		cfg.Annotations = maps.Clone(o.Annotations)
	}
	for _, e := range entries {
		cfg.Webhooks = append(cfg.Webhooks, entry(e.name, cc, e.ns, e.pods))
	}
	return cfg, nil
}

// entry is one webhook entry of a revision's or tag's configuration.
func entry(name string, cc admissionregistrationv1.WebhookClientConfig, ns, pods *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	namespaced := admissionregistrationv1.NamespacedScope
	timeout := int32(10)
	return admissionregistrationv1.MutatingWebhook{
		Name:         name,
		ClientConfig: *cc.DeepCopy(),
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &namespaced,
			},
		}},
		FailurePolicy:           &fail,
		MatchPolicy:             &equivalent,
		NamespaceSelector:       ns,
		ObjectSelector:          pods,
		SideEffects:             &none,
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1", "v1beta1"},
		ReinvocationPolicy:      &ifNeeded,
	}
}
