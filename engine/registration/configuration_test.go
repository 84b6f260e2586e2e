package registration

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// readConfigs reads the MutatingWebhookConfigurations of a YAML file.
func readConfigs(t *testing.T, path string) []admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []admissionregistrationv1.MutatingWebhookConfiguration
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind != "MutatingWebhookConfiguration" {
			continue
		}
		var c admissionregistrationv1.MutatingWebhookConfiguration
		if err := yaml.UnmarshalStrict(doc, &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no MutatingWebhookConfiguration", path)
	}
	return out
}

func generated(t *testing.T, kind Kind, name string) admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	cfg, err := Configuration(kind, name, Options{
		ClientConfig:      ServiceClientConfig("rego-injector", "rego-injector-system", []byte("CA")),
		InjectorNamespace: "rego-injector-system",
	})
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}

func TestConfigurationShape(t *testing.T) {
	cfg := generated(t, Tag, "prod")
	if cfg.Name != "rego-injector-tag-prod" || cfg.Labels[NameLabel] != "rego-injector" || cfg.Labels[revisions.TagLabel] != "prod" || len(cfg.Labels) != 2 {
		t.Errorf("name %s, labels %v", cfg.Name, cfg.Labels)
	}
	if rev := generated(t, Revision, "1-31"); rev.Name != "rego-injector-rev-1-31" || rev.Labels[revisions.RevisionLabel] != "1-31" {
		t.Errorf("revision configuration: name %s, labels %v", rev.Name, rev.Labels)
	}
	if len(cfg.Webhooks) != 4 {
		t.Fatalf("%d entries, want 4", len(cfg.Webhooks))
	}
	seen := map[string]bool{}
	for _, w := range cfg.Webhooks {
		if seen[w.Name] || strings.Count(w.Name, ".") < 2 || len(validation.IsDNS1123Subdomain(w.Name)) > 0 {
			t.Errorf("webhook name %q: must be a unique DNS name of three segments or more", w.Name)
		}
		seen[w.Name] = true
		cc := w.ClientConfig
		if cc.Service == nil || cc.Service.Name != "rego-injector" || cc.Service.Namespace != "rego-injector-system" || *cc.Service.Path != "/inject" || *cc.Service.Port != 443 || string(cc.CABundle) != "CA" {
			t.Errorf("%s: clientConfig %+v", w.Name, cc)
		}
		if *w.FailurePolicy != admissionregistrationv1.Fail || *w.MatchPolicy != admissionregistrationv1.Equivalent ||
			*w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.TimeoutSeconds != 10 ||
			*w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy ||
			strings.Join(w.AdmissionReviewVersions, ",") != "v1,v1beta1" {
			t.Errorf("%s: policies %+v", w.Name, w)
		}
		if len(w.Rules) != 1 || !coversPodCreate(w.Rules) || *w.Rules[0].Scope != admissionregistrationv1.NamespacedScope ||
			len(w.Rules[0].Operations) != 1 || w.Rules[0].Resources[0] != "pods" {
			t.Errorf("%s: rules %+v", w.Name, w.Rules)
		}
		last := w.NamespaceSelector.MatchExpressions[len(w.NamespaceSelector.MatchExpressions)-1]
		if last.Key != NamespaceNameLabel || last.Operator != notIn || strings.Join(last.Values, ",") != "kube-system,kube-public,kube-node-lease,rego-injector-system" {
			t.Errorf("%s: the system namespaces are not left out: %+v", w.Name, last)
		}
	}
	url := "https://injector.example:8443/inject"
	byURL, err := Configuration(Revision, "canary", Options{ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}})
	if err != nil || *byURL.Webhooks[0].ClientConfig.URL != url || byURL.Webhooks[0].ClientConfig.Service != nil {
		t.Errorf("by URL: %v %+v", err, byURL)
	}
}

func TestConfigurationRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "Canary", "1.31", "a_b", "-a", strings.Repeat("a", 64)} {
		if _, err := Configuration(Revision, name, Options{}); !errors.Is(err, ErrName) {
			t.Errorf("%q: %v, want ErrName", name, err)
		}
	}
	if _, err := Configuration("version", "ok", Options{}); err == nil {
		t.Error("a configuration of unknown kind")
	}
}

// TestConfigurationRoutes: which entry of canary's configuration takes a pod, for the ways a
// namespace and a pod can choose a revision: the precedence of the Istio webhooks, with our label
// beside Istio's and winning over it on the same object.
func TestConfigurationRoutes(t *testing.T) {
	cfg := generated(t, Revision, "canary")
	for _, tc := range []struct {
		name      string
		namespace map[string]string
		pod       map[string]string
		want      string // the entry, "" for none
	}{
		{"namespace, ours", map[string]string{"rego-injector.io/rev": "canary"}, nil, "rev.namespace.rego-injector.io"},
		{"namespace, Istio's", map[string]string{"istio.io/rev": "canary"}, nil, "istio-rev.namespace.rego-injector.io"},
		{"namespace, ours wins", map[string]string{"istio.io/rev": "canary", "rego-injector.io/rev": "stable"}, nil, ""},
		{"namespace, ours wins for us", map[string]string{"istio.io/rev": "stable", "rego-injector.io/rev": "canary"}, nil, "rev.namespace.rego-injector.io"},
		{"pod, ours", nil, map[string]string{"rego-injector.io/rev": "canary"}, "rev.object.rego-injector.io"},
		{"pod, Istio's", nil, map[string]string{"istio.io/rev": "canary"}, "istio-rev.object.rego-injector.io"},
		{"pod, ours wins", nil, map[string]string{"istio.io/rev": "canary", "rego-injector.io/rev": "stable"}, ""},
		{"namespace wins over pod", map[string]string{"istio.io/rev": "stable"}, map[string]string{"istio.io/rev": "canary"}, ""},
		{"namespace wins over pod for us", map[string]string{"istio.io/rev": "canary"}, map[string]string{"rego-injector.io/rev": "stable"}, "istio-rev.namespace.rego-injector.io"},
		{"switch wins", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil, ""},
		{"switch off wins", map[string]string{"rego-injector.io/inject": "disabled"}, map[string]string{"istio.io/rev": "canary"}, ""},
		{"opted out", map[string]string{"istio.io/rev": "canary"}, map[string]string{"sidecar.istio.io/inject": "false"}, ""},
		{"opted in", nil, map[string]string{"sidecar.istio.io/inject": "true", "istio.io/rev": "canary"}, "istio-rev.object.rego-injector.io"},
		{"the injector's namespace", map[string]string{"istio.io/rev": "canary", NamespaceNameLabel: "rego-injector-system"}, nil, ""},
		{"another revision", map[string]string{"istio.io/rev": "stable"}, nil, ""},
		{"nothing chosen", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range cfg.Webhooks {
				if matchesAll(t, withName(tc.namespace), w.NamespaceSelector) && matchesAll(t, tc.pod, w.ObjectSelector) {
					got = append(got, w.Name)
				}
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("sent to %v, want %q", got, tc.want)
			}
		})
	}
}

// withName gives namespace labels the name label every namespace has, when they lack it.
func withName(l map[string]string) map[string]string {
	out := map[string]string{NamespaceNameLabel: "apps"}
	for k, v := range l {
		out[k] = v
	}
	return out
}
