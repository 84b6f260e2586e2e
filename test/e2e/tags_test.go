package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/rego-injector/rego-injector/engine/registration"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// tagsNamespace is the injector namespace of TestTagsAndPrecheck: its own, so that the tags
// ConfigMap it writes is not the one the shared injector reads.
const tagsNamespace = "e2e-tags-system"

// runInjectorCommand runs the binary under test with args and the cluster's kubeconfig, returning
// its exit status and output.
func runInjectorCommand(t *testing.T, e *environment, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Getenv("REGO_INJECTOR_BIN"), append(args, "--kubeconfig", e.cluster.Kubeconfig)...)
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("rego-injector %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// TestTagsAndPrecheck: tag set, list and remove against the apiserver; the tag's configuration has
// the selectors of registration.Configuration and sends the pods of a namespace naming the tag to
// the injector; certs --revisions writes a revision's configuration and keeps the tag's caBundle;
// precheck passes on our configurations and fails, with a witness, once Istio's default four
// entries are beside them.
func TestTagsAndPrecheck(t *testing.T) {
	e := need(t)
	admission := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, name := range []string{"rego-injector-tag-e2e-gold", "rego-injector-rev-e2e-blue", "istio-sidecar-injector-e2e"} {
			if err := admission.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("clean up %s: %v", name, err)
			}
		}
		_, _, _ = e.cluster.kubectl(ctx, "", "delete", "namespace", "--wait=false", "--ignore-not-found",
			tagsNamespace, "tags-gold", "tags-nowhere", "tags-istio")
	})
	namespace(t, tagsNamespace, nil)
	ns := []string{"--injector-namespace", tagsNamespace}
	must := func(args ...string) string {
		t.Helper()
		code, out, stderr := runInjectorCommand(t, e, args...)
		if code != 0 {
			t.Fatalf("rego-injector %v: exit %d\n%s%s", args, code, out, stderr)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		code, out, stderr := runInjectorCommand(t, e, args...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("rego-injector %v: exit %d, want a failure saying %q\n%s%s", args, code, want, out, stderr)
		}
	}

	// tag set: the ConfigMap entry, then the configuration, copying the shared configuration's
	// client config (the shared injector's URL and CA).
	set := append([]string{"tag", "set", "e2e-gold", "--revision", "e2e-blue", "--webhook-configuration", "rego-injector-e2e"}, ns...)
	if out := must(set...); !strings.Contains(out, "tag e2e-gold → revision e2e-blue (new)") || !strings.Contains(out, "MutatingWebhookConfiguration/rego-injector-tag-e2e-gold: created") {
		t.Errorf("tag set: %s", out)
	}
	cm, err := e.cluster.Client.CoreV1().ConfigMaps(tagsNamespace).Get(t.Context(), revisions.TagsConfigMap, metav1.GetOptions{})
	if err != nil || cm.Data["e2e-gold"] != "e2e-blue" || cm.Labels["app.kubernetes.io/name"] != "rego-injector" {
		t.Fatalf("tags ConfigMap %+v: %v", cm, err)
	}
	shared, err := admission.Get(t.Context(), "rego-injector-e2e", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := registration.Configuration(registration.Tag, "e2e-gold", registration.Options{ClientConfig: shared.Webhooks[0].ClientConfig, InjectorNamespace: tagsNamespace})
	if err != nil {
		t.Fatal(err)
	}
	got, err := admission.Get(t.Context(), "rego-injector-tag-e2e-gold", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Webhooks, want.Webhooks) || got.Labels[revisions.TagLabel] != "e2e-gold" || got.Labels["app.kubernetes.io/name"] != "rego-injector" {
		t.Errorf("the tag's configuration as the apiserver keeps it:\n%+v\nwant\n%+v\nlabels %v", got.Webhooks, want.Webhooks, got.Labels)
	}
	fails("points at another revision", append([]string{"tag", "set", "e2e-gold", "--revision", "e2e-green", "--webhook-configuration", "rego-injector-e2e"}, ns...)...)
	if out := must(append([]string{"tag", "set", "e2e-gold", "--revision", "e2e-green", "--overwrite", "--webhook-configuration", "rego-injector-e2e"}, ns...)...); !strings.Contains(out, "(was e2e-blue)") || !strings.Contains(out, ": unchanged") {
		t.Errorf("tag set --overwrite: %s", out)
	}

	// A namespace naming the tag is sent to the injector through the tag's configuration alone
	// (the shared configuration leaves namespaces that name a revision alone).
	namespace(t, "tags-gold", map[string]string{"istio.io/rev": "e2e-gold"})
	namespace(t, "tags-nowhere", map[string]string{"istio.io/rev": "nowhere"})
	before := admissions(t, e.injector, "inject")
	for deadline := time.Now().Add(30 * time.Second); admissions(t, e.injector, "inject") == before; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a pod in a namespace labelled istio.io/rev=e2e-gold never reached the injector")
		}
		_, _ = e.cluster.Client.CoreV1().Pods("tags-gold").Create(t.Context(), simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	pod, err := e.cluster.Client.CoreV1().Pods("tags-nowhere").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil || hasContainer(pod, "istio-proxy") || status(t, pod) != nil {
		t.Errorf("a namespace naming a tag nobody routes: the pod was changed or refused (%v)", err)
	}

	var tags []registration.TagInfo
	if err := json.Unmarshal([]byte(must(append([]string{"tag", "list", "-o", "json"}, ns...)...)), &tags); err != nil {
		t.Fatal(err)
	}
	if len(tags) != 1 || tags[0].Tag != "e2e-gold" || tags[0].Revision != "e2e-green" || tags[0].Configuration != "rego-injector-tag-e2e-gold" || !slices.Equal(tags[0].Namespaces, []string{"tags-gold"}) {
		t.Errorf("tag list: %+v", tags)
	}
	if out := must(append([]string{"tag", "list"}, ns...)...); !strings.Contains(out, "TAG") || !strings.Contains(out, "e2e-gold") || !strings.Contains(out, "tags-gold") {
		t.Errorf("tag list: %s", out)
	}

	// certs --revisions writes revision e2e-blue's configuration with the CA of the Secret, and keeps
	// the tag's caBundle on the same CA (as serve --manage-certs does each round).
	out := must("certs", "--service-namespace", tagsNamespace, "--webhook-configurations", "none-here", "--revisions", "e2e-blue")
	if !strings.Contains(out, "MutatingWebhookConfiguration/rego-injector-rev-e2e-blue: created") || !strings.Contains(out, "MutatingWebhookConfiguration/rego-injector-tag-e2e-gold: caBundle patched") {
		t.Errorf("certs --revisions: %s", out)
	}
	secret, err := e.cluster.Client.CoreV1().Secrets(tagsNamespace).Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rego-injector-rev-e2e-blue", "rego-injector-tag-e2e-gold"} {
		c, err := admission.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
				t.Errorf("%s/%s: caBundle is not the Secret's CA", name, w.Name)
			}
		}
	}
	blue, _ := admission.Get(t.Context(), "rego-injector-rev-e2e-blue", metav1.GetOptions{})
	if s := blue.Webhooks[0].ClientConfig.Service; s == nil || s.Name != "rego-injector" || s.Namespace != tagsNamespace || blue.Labels[revisions.RevisionLabel] != "e2e-blue" {
		t.Errorf("e2e-blue's configuration: %+v, labels %v", blue.Webhooks[0].ClientConfig, blue.Labels)
	}

	// precheck looks at the whole shared cluster, where configurations other tests left may overlap
	// each other; this test judges the overlaps among its own configurations and the shared one.
	judged := map[string]bool{"rego-injector-e2e": true, "rego-injector-tag-e2e-gold": true, "rego-injector-rev-e2e-blue": true, "istio-sidecar-injector-e2e": true}
	precheck := func() (int, registration.Report, string) {
		t.Helper()
		code, out, stderr := runInjectorCommand(t, e, append([]string{"precheck", "-o", "json"}, ns...)...)
		var r registration.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("precheck: %v\n%s%s", err, out, stderr)
		}
		if want := map[bool]int{false: 0, true: 1}[len(r.Overlaps) > 0]; code != want {
			t.Errorf("precheck: exit %d with %d overlaps, want %d\n%s", code, len(r.Overlaps), want, stderr)
		}
		others := len(r.Overlaps)
		r.Overlaps = slices.DeleteFunc(r.Overlaps, func(o registration.Overlap) bool {
			return !judged[o.First.Configuration] || !judged[o.Second.Configuration]
		})
		if others -= len(r.Overlaps); others > 0 {
			t.Logf("precheck: %d overlaps among configurations other tests left", others)
		}
		return code, r, out + stderr
	}
	_, r, text := precheck()
	if len(r.Overlaps) != 0 {
		t.Fatalf("precheck on our configurations finds overlaps:\n%s", text)
	}
	if !slices.ContainsFunc(r.Warnings, func(w registration.Warning) bool {
		return w.Namespace == "tags-nowhere" && strings.Contains(w.Message, "no injector entry takes this namespace")
	}) {
		t.Errorf("precheck does not warn about tags-nowhere: %+v", r.Warnings)
	}
	for _, name := range []string{"rego-injector-tag-e2e-gold", "rego-injector-rev-e2e-blue", "rego-injector-e2e"} {
		if !slices.ContainsFunc(r.Entries, func(en registration.Entry) bool { return en.Configuration == name }) {
			t.Errorf("precheck did not look at %s: %+v", name, r.Entries)
		}
	}

	// Istio's default configuration beside ours: its four entries, narrowed to the namespaces
	// labelled e2e-tags-istio and calling nowhere with failurePolicy Ignore, so that no other test
	// notices them.
	istio := istioDefault(t)
	if _, err := admission.Create(t.Context(), istio, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	namespace(t, "tags-istio", map[string]string{"istio-injection": "enabled", "e2e-tags-istio": ""})
	code, r, text := precheck()
	if code != 1 || !strings.Contains(text, "overlapping injector webhooks") {
		t.Fatalf("precheck with Istio's configuration: exit %d, want 1\n%s", code, text)
	}
	i := slices.IndexFunc(r.Overlaps, func(o registration.Overlap) bool {
		pair := []string{o.First.String(), o.Second.String()}
		slices.Sort(pair)
		return pair[0] == "istio-sidecar-injector-e2e/namespace.sidecar-injector.istio.io" && pair[1] == "rego-injector-e2e/inject.rego-injector.io"
	})
	if i < 0 {
		t.Fatalf("the overlap of the istio-injection=enabled entries is not reported:\n%s", text)
	}
	o := r.Overlaps[i]
	nsLabels := labels.Set(o.NamespaceLabels)
	for _, s := range []*metav1.LabelSelector{shared.Webhooks[0].NamespaceSelector, istio.Webhooks[2].NamespaceSelector} {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil || !sel.Matches(nsLabels) {
			t.Errorf("the witness namespace %v does not match %v (%v)", o.NamespaceLabels, s, err)
		}
	}
	if !slices.Equal(o.Namespaces, []string{"tags-istio"}) {
		t.Errorf("namespaces where both are called: %v, want tags-istio", o.Namespaces)
	}
	code, table, stderr := runInjectorCommand(t, e, append([]string{"precheck"}, ns...)...)
	if code != 1 || !strings.Contains(table, "OVERLAP  istio-sidecar-injector-e2e/namespace.sidecar-injector.istio.io (istio)\n    and  rego-injector-e2e/inject.rego-injector.io (rego-injector)") ||
		!strings.Contains(table, "in a namespace labelled {e2e-tags-istio=any, istio-injection=enabled, kubernetes.io/metadata.name=any}") {
		t.Errorf("precheck table: exit %d\n%s%s", code, table, stderr)
	}
	if err := admission.Delete(t.Context(), istio.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, r, text := precheck(); len(r.Overlaps) != 0 {
		t.Errorf("precheck after Istio's configuration is gone:\n%s", text)
	}

	// tag remove: refused while tags-gold names the tag, then forced.
	fails("namespaces still use the tag", append([]string{"tag", "remove", "e2e-gold"}, ns...)...)
	if _, err := admission.Get(t.Context(), "rego-injector-tag-e2e-gold", metav1.GetOptions{}); err != nil {
		t.Fatalf("a refused remove deleted the configuration: %v", err)
	}
	if out := must(append([]string{"tag", "remove", "e2e-gold", "--force"}, ns...)...); !strings.Contains(out, "tag e2e-gold removed") {
		t.Errorf("tag remove --force: %s", out)
	}
	if _, err := admission.Get(t.Context(), "rego-injector-tag-e2e-gold", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the tag's configuration is still there: %v", err)
	}
	cm, err = e.cluster.Client.CoreV1().ConfigMaps(tagsNamespace).Get(t.Context(), revisions.TagsConfigMap, metav1.GetOptions{})
	if err != nil || len(cm.Data) != 0 {
		t.Errorf("tags ConfigMap after remove: %v (%v)", cm.Data, err)
	}
	fails("no such tag", append([]string{"tag", "remove", "e2e-gold", "--force"}, ns...)...)
}

// istioDefault is the four entries istiod's chart installs for its default revision, narrowed to
// namespaces labelled e2e-tags-istio, calling an address where nothing listens with failurePolicy
// Ignore.
func istioDefault(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	url := "https://127.0.0.1:1/inject"
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	r := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	narrowed := r("e2e-tags-istio", metav1.LabelSelectorOpExists)
	entry := func(name string, ns, pod []metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules:                   rules,
			FailurePolicy:           ptr(admissionregistrationv1.Ignore),
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: append(ns, narrowed)},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: pod},
		}
	}
	notOut := r("sidecar.istio.io/inject", metav1.LabelSelectorOpNotIn, "false")
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector-e2e", Labels: map[string]string{"app": "sidecar-injector"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			entry("rev.namespace.sidecar-injector.istio.io",
				[]metav1.LabelSelectorRequirement{r("istio.io/rev", metav1.LabelSelectorOpIn, "default"), r("istio-injection", metav1.LabelSelectorOpDoesNotExist)},
				[]metav1.LabelSelectorRequirement{notOut}),
			entry("rev.object.sidecar-injector.istio.io",
				[]metav1.LabelSelectorRequirement{r("istio.io/rev", metav1.LabelSelectorOpDoesNotExist), r("istio-injection", metav1.LabelSelectorOpDoesNotExist)},
				[]metav1.LabelSelectorRequirement{notOut, r("istio.io/rev", metav1.LabelSelectorOpIn, "default")}),
			entry("namespace.sidecar-injector.istio.io",
				[]metav1.LabelSelectorRequirement{r("istio-injection", metav1.LabelSelectorOpIn, "enabled")},
				[]metav1.LabelSelectorRequirement{notOut}),
			entry("object.sidecar-injector.istio.io",
				[]metav1.LabelSelectorRequirement{r("istio-injection", metav1.LabelSelectorOpDoesNotExist), r("istio.io/rev", metav1.LabelSelectorOpDoesNotExist)},
				[]metav1.LabelSelectorRequirement{r("sidecar.istio.io/inject", metav1.LabelSelectorOpIn, "true"), r("istio.io/rev", metav1.LabelSelectorOpDoesNotExist)}),
		},
	}
}
