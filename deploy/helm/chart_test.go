// Package helm tests the chart in rego-injector/: rendered with `go tool helm template` over the
// values files in rego-injector/ci, each rendering must hold what its values ask for, and what the
// chart shares with the kustomize tree (webhook entries, alerts, the protection overlay) must be the
// same in both.
package helm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/registration"
)

const chart = "rego-injector"

// rendering is the chart rendered once: its objects by "Kind/name".
type rendering struct {
	raw     string
	objects map[string][]byte
	order   []string
}

// render runs `go tool helm template` with the values files and --set flags given.
func render(t *testing.T, namespace string, args ...string) *rendering {
	t.Helper()
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.Command(goBin, append([]string{"tool", "helm", "template", "rel", chart, "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	r := &rendering{raw: string(out), objects: map[string][]byte{}}
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("helm template %v: a document is not YAML: %v\n%s", args, err, doc)
		}
		if head.Kind == "" {
			continue
		}
		if _, hook := head.Metadata.Annotations["helm.sh/hook"]; hook {
			t.Errorf("%s/%s is a Helm hook: `helm template` output would not be the whole installation", head.Kind, head.Metadata.Name)
		}
		key := head.Kind + "/" + head.Metadata.Name
		if _, dup := r.objects[key]; dup {
			t.Errorf("%s rendered twice", key)
		}
		r.objects[key] = doc
		r.order = append(r.order, key)
	}
	return r
}

// get decodes the object key into v, strictly: a field the API type does not have is an error.
func (r *rendering) get(t *testing.T, key string, v any) {
	t.Helper()
	doc, ok := r.objects[key]
	if !ok {
		t.Fatalf("%s not rendered; have %v", key, r.order)
	}
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func (r *rendering) has(key string) bool { _, ok := r.objects[key]; return ok }

func ciValues(name string) string { return filepath.Join(chart, "ci", name+"-values.yaml") }

func container(t *testing.T, r *rendering) corev1.Container {
	t.Helper()
	var d appsv1.Deployment
	r.get(t, "Deployment/rel-rego-injector", &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return d.Spec.Template.Spec.Containers[0]
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func webhooks(t *testing.T, r *rendering) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	t.Helper()
	var m admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/rel-rego-injector", &m)
	if !r.has("ValidatingWebhookConfiguration/rel-rego-injector") {
		return &m, nil
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	r.get(t, "ValidatingWebhookConfiguration/rel-rego-injector", &v)
	return &m, &v
}

func conditionNames(w admissionregistrationv1.MutatingWebhook) []string {
	var names []string
	for _, c := range w.MatchConditions {
		names = append(names, c.Name)
	}
	return names
}

// TestDefaults: 3 replicas spread over zones and nodes, a disruption budget, GOMEMLIMIT from the
// memory limit, certificates managed by the injector with the RBAC that needs, and the five
// webhook entries with their failure policies and match conditions.
func TestDefaults(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("default"))
	for _, key := range []string{"ServiceAccount/rel-rego-injector", "ClusterRole/rel-rego-injector", "ClusterRoleBinding/rel-rego-injector",
		"Role/rel-rego-injector-certs", "RoleBinding/rel-rego-injector-certs", "Service/rel-rego-injector", "PodDisruptionBudget/rel-rego-injector"} {
		if !r.has(key) {
			t.Errorf("%s not rendered", key)
		}
	}
	for _, key := range []string{"Namespace/injectors", "ServiceMonitor/rel-rego-injector", "PrometheusRule/rel-rego-injector", "ValidatingAdmissionPolicy/rel-rego-injector-protect-mutating", "Certificate/rel-rego-injector-serving"} {
		if r.has(key) {
			t.Errorf("%s rendered by default", key)
		}
	}
	var d appsv1.Deployment
	r.get(t, "Deployment/rel-rego-injector", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", d.Spec.Replicas)
	}
	if d.Namespace != "injectors" {
		t.Errorf("namespace %q: helm template output must name the release namespace", d.Namespace)
	}
	var keys []string
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		keys = append(keys, c.TopologyKey)
	}
	if !slices.Equal(keys, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}) {
		t.Errorf("topology spread over %v", keys)
	}
	var pdb policyv1.PodDisruptionBudget
	r.get(t, "PodDisruptionBudget/rel-rego-injector", &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget %+v does not keep all replicas of the Deployment but one", pdb.Spec)
	}
	c := container(t, r)
	if v, _ := env(c, "GOMEMLIMIT"); v != "460MiB" { // 90 % of 512Mi, whole MiB
		t.Errorf("GOMEMLIMIT %q, want 460MiB", v)
	}
	for _, arg := range []string{"--manage-certs", "--cert-secret=rel-rego-injector-tls", "--webhook-configurations=rel-rego-injector", "--cert-service=rel-rego-injector", "--max-concurrent-admissions=0", "--max-queue-wait=1s"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--bundle") }) {
		t.Errorf("no bundle configured, yet args %v name one", c.Args)
	}

	m, v := webhooks(t, r)
	want := map[string]admissionregistrationv1.FailurePolicyType{"inject.rego-injector.io": "Fail", "inject-ours.rego-injector.io": "Fail", "inject-optional.rego-injector.io": "Ignore"}
	if len(m.Webhooks) != len(want) {
		t.Fatalf("%d mutating entries, want %d", len(m.Webhooks), len(want))
	}
	for _, w := range m.Webhooks {
		if *w.FailurePolicy != want[w.Name] {
			t.Errorf("%s: failurePolicy %s, want %s", w.Name, *w.FailurePolicy, want[w.Name])
		}
		if names := conditionNames(w); !slices.Equal(names, []string{"not-host-network", "not-opted-out"}) {
			t.Errorf("%s: matchConditions %v", w.Name, names)
		}
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Namespace != "injectors" || w.ClientConfig.Service.Name != "rel-rego-injector" || len(w.ClientConfig.CABundle) != 0 {
			t.Errorf("%s: clientConfig %+v, want the Service and no caBundle (the injector patches it)", w.Name, w.ClientConfig)
		}
		last := w.NamespaceSelector.MatchExpressions[len(w.NamespaceSelector.MatchExpressions)-1]
		if last.Key != "kubernetes.io/metadata.name" || !slices.Contains(last.Values, "injectors") || !slices.Contains(last.Values, "kube-system") {
			t.Errorf("%s: the release namespace and the system ones are not left out: %+v", w.Name, last)
		}
	}
	if v == nil || len(v.Webhooks) != 2 || *v.Webhooks[0].FailurePolicy != "Fail" || *v.Webhooks[1].FailurePolicy != "Ignore" {
		t.Errorf("validating configuration: %+v", v)
	}
	for _, w := range v.Webhooks {
		if len(w.MatchConditions) != 0 {
			t.Errorf("%s: the validating entries must see every pod, yet have matchConditions", w.Name)
		}
	}
	if again := render(t, "injectors", "-f", ciValues("default")); again.raw != r.raw {
		t.Error("two renderings differ: static manifests must be the same every time")
	}
}

// TestSameAsKustomize: rendered as the kustomize base names things (release rego-injector in
// rego-injector-system), the chart's webhook entries are deploy/base/webhooks.yaml's, plus the
// matchConditions, and with the protection on, its policies are deploy/overlays/protected's.
func TestSameAsKustomize(t *testing.T) {
	r := render(t, "rego-injector-system", "--set", "fullnameOverride=rego-injector", "--set", "webhookProtection.enabled=true")
	base := readObjects(t, filepath.Join("..", "base", "webhooks.yaml"))
	var gotM, wantM admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/rego-injector", &gotM)
	unmarshal(t, base["MutatingWebhookConfiguration/rego-injector"], &wantM)
	for i := range gotM.Webhooks {
		gotM.Webhooks[i].MatchConditions = nil
	}
	if !reflect.DeepEqual(gotM.Webhooks, wantM.Webhooks) {
		t.Errorf("mutating entries differ from deploy/base/webhooks.yaml:\nchart: %s\nbase:  %s", toJSON(t, gotM.Webhooks), toJSON(t, wantM.Webhooks))
	}
	var gotV, wantV admissionregistrationv1.ValidatingWebhookConfiguration
	r.get(t, "ValidatingWebhookConfiguration/rego-injector", &gotV)
	unmarshal(t, base["ValidatingWebhookConfiguration/rego-injector"], &wantV)
	if !reflect.DeepEqual(gotV.Webhooks, wantV.Webhooks) {
		t.Errorf("validating entries differ from deploy/base/webhooks.yaml:\nchart: %s\nbase:  %s", toJSON(t, gotV.Webhooks), toJSON(t, wantV.Webhooks))
	}
	overlay := readObjects(t, filepath.Join("..", "overlays", "protected", "webhook-protection.yaml"))
	if len(overlay) != 4 {
		t.Errorf("deploy/overlays/protected/webhook-protection.yaml: %d objects, want 2 policies and 2 bindings", len(overlay))
	}
	for key, doc := range overlay {
		rendered, ok := r.objects[key]
		if !ok {
			t.Errorf("%s is in the overlay, not in the chart", key)
			continue
		}
		var got, want map[string]any
		unmarshal(t, rendered, &got)
		unmarshal(t, doc, &want)
		if !reflect.DeepEqual(got["spec"], want["spec"]) {
			t.Errorf("%s: the overlay's spec differs from the chart's:\nchart:   %s\noverlay: %s", key, toJSON(t, got["spec"]), toJSON(t, want["spec"]))
		}
	}
}

// TestCertManager: the chart's own CA and Issuer, the serving Certificate for the Service into the
// mounted Secret, and both configurations asking cert-manager's CA injector for their caBundle.
func TestCertManager(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("cert-manager"))
	for _, key := range []string{"Issuer/rel-rego-injector-selfsigned", "Certificate/rel-rego-injector-ca", "Issuer/rel-rego-injector-ca", "Certificate/rel-rego-injector-serving"} {
		if !r.has(key) {
			t.Errorf("%s not rendered", key)
		}
	}
	if r.has("Role/rel-rego-injector-certs") {
		t.Error("the Secret RBAC of self-managed certificates is rendered with cert-manager")
	}
	serving := string(r.objects["Certificate/rel-rego-injector-serving"])
	for _, want := range []string{"secretName: rel-rego-injector-tls", "- rel-rego-injector.injectors.svc\n"} {
		if !strings.Contains(serving, want) {
			t.Errorf("serving Certificate lacks %q:\n%s", want, serving)
		}
	}
	m, v := webhooks(t, r)
	for _, annotations := range []map[string]string{m.Annotations, v.Annotations} {
		if annotations["cert-manager.io/inject-ca-from"] != "injectors/rel-rego-injector-serving" {
			t.Errorf("annotations %v: no inject-ca-from", annotations)
		}
	}
	c := container(t, r)
	if slices.Contains(c.Args, "--manage-certs") || !slices.Contains(c.Args, "--tls-cert-file=/etc/rego-injector/tls/tls.crt") {
		t.Errorf("args %v: want the mounted certificate", c.Args)
	}
}

// TestUserSupplied: the Secret named, the CA in every entry's caBundle, the webhooks calling the URL.
func TestUserSupplied(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("user-supplied"))
	var d appsv1.Deployment
	r.get(t, "Deployment/rel-rego-injector", &d)
	if i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tls" }); i < 0 ||
		d.Spec.Template.Spec.Volumes[i].Secret == nil || d.Spec.Template.Spec.Volumes[i].Secret.SecretName != "my-webhook-tls" {
		t.Errorf("volumes %+v: want the Secret my-webhook-tls", d.Spec.Template.Spec.Volumes)
	}
	m, v := webhooks(t, r)
	check := func(name string, cc admissionregistrationv1.WebhookClientConfig, path string) {
		if cc.URL == nil || *cc.URL != "https://injector.example.com:8443"+path || cc.Service != nil {
			t.Errorf("%s: clientConfig %+v, want the URL", name, cc)
		}
		if !strings.HasPrefix(string(cc.CABundle), "-----BEGIN CERTIFICATE-----\n") {
			t.Errorf("%s: caBundle %q is not the CA given", name, cc.CABundle)
		}
	}
	for _, w := range m.Webhooks {
		check(w.Name, w.ClientConfig, "/inject")
	}
	for _, w := range v.Webhooks {
		check(w.Name, w.ClientConfig, "/validate")
	}
}

// TestBundles: every source a --bundle flag in order, ConfigMaps mounted by name,
// verification key and server CA from the chart's ConfigMap, registry credentials for OCI.
func TestBundles(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("bundles"))
	c := container(t, r)
	var bundles []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--bundle="); ok {
			bundles = append(bundles, v)
		}
	}
	want := []string{
		"oci://registry.example.com/policies/rego-injector:v1",
		"https://bundles.example.com/team-a.tar.gz",
		"/etc/rego-injector/bundles/local/bundle.tar.gz",
		"/etc/rego-injector/bundles/tree",
		"canary=oci://registry.example.com/policies/rego-injector:v2",
		"1-32=oci://registry.example.com/policies/rego-injector:v3",
	}
	if !slices.Equal(bundles, want) {
		t.Errorf("--bundle %v, want %v", bundles, want)
	}
	for _, arg := range []string{"--shadow-bundle=oci://registry.example.com/policies/rego-injector:v2", "--bundle-signing-alg=ES256",
		"--bundle-verification-key=/etc/rego-injector/bundle-config/verification-key.pem", "--bundle-ca-file=/etc/rego-injector/bundle-config/server-ca.pem"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args lack %s", arg)
		}
	}
	if v, _ := env(c, "DOCKER_CONFIG"); v != "/etc/rego-injector/registry" {
		t.Errorf("DOCKER_CONFIG %q", v)
	}
	var tags corev1.ConfigMap
	r.get(t, "ConfigMap/rego-injector-tags", &tags)
	if !maps.Equal(tags.Data, map[string]string{"prod": "default", "next": "canary"}) {
		t.Errorf("tags ConfigMap: %v", tags.Data)
	}
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/rel-rego-injector-bundle-config", &cm)
	if !strings.Contains(cm.Data["verification-key.pem"], "BEGIN PUBLIC KEY") || !strings.Contains(cm.Data["server-ca.pem"], "BEGIN CERTIFICATE") {
		t.Errorf("bundle ConfigMap: %v", cm.Data)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for name, path := range map[string]string{"bundle-local": "/etc/rego-injector/bundles/local", "bundle-tree": "/etc/rego-injector/bundles/tree", "registry": "/etc/rego-injector/registry", "bundle-config": "/etc/rego-injector/bundle-config"} {
		if mounts[name] != path {
			t.Errorf("mount %s at %q, want %s", name, mounts[name], path)
		}
	}
}

// TestValidatingOff: no validating configuration; failure policy, selectors and conditions as set;
// one replica without a disruption budget; GOMEMLIMIT as given.
func TestValidatingOff(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("validating-off"))
	m, v := webhooks(t, r)
	if v != nil {
		t.Error("validating configuration rendered with webhooks.validating.enabled false")
	}
	for _, w := range m.Webhooks {
		if w.Name != "inject-optional.rego-injector.io" && *w.FailurePolicy != "Ignore" {
			t.Errorf("%s: failurePolicy %s, want Ignore", w.Name, *w.FailurePolicy)
		}
		last := w.NamespaceSelector.MatchExpressions[len(w.NamespaceSelector.MatchExpressions)-1]
		if last.Key != "team" || last.Values[0] != "payments" {
			t.Errorf("%s: namespaceSelector %+v lacks the expression given", w.Name, w.NamespaceSelector)
		}
		if names := conditionNames(w); !slices.Equal(names, []string{"not-a-job"}) {
			t.Errorf("%s: matchConditions %v, want only not-a-job", w.Name, names)
		}
	}
	if r.has("PodDisruptionBudget/rel-rego-injector") {
		t.Error("a PodDisruptionBudget for one replica would block every drain")
	}
	c := container(t, r)
	if v, _ := env(c, "GOMEMLIMIT"); v != "300MiB" {
		t.Errorf("GOMEMLIMIT %q, want 300MiB", v)
	}
	var d appsv1.Deployment
	r.get(t, "Deployment/rel-rego-injector", &d)
	if d.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName %q", d.Spec.Template.Spec.PriorityClassName)
	}
}

// TestMonitoring: the ServiceMonitor, the PrometheusRule with exactly the rules of
// deploy/prometheus/prometheus-rule.yaml, the protection policies, the namespace.
func TestMonitoring(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("monitoring"))
	for _, key := range []string{"ServiceMonitor/rel-rego-injector", "Namespace/injectors",
		"ValidatingAdmissionPolicy/rel-rego-injector-protect-mutating", "ValidatingAdmissionPolicyBinding/rel-rego-injector-protect-mutating",
		"ValidatingAdmissionPolicy/rel-rego-injector-protect-validating", "ValidatingAdmissionPolicyBinding/rel-rego-injector-protect-validating"} {
		if !r.has(key) {
			t.Errorf("%s not rendered", key)
		}
	}
	var rule, shipped map[string]any
	r.get(t, "PrometheusRule/rel-rego-injector", &rule)
	raw, err := os.ReadFile(filepath.Join("..", "prometheus", "prometheus-rule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	unmarshal(t, raw, &shipped)
	if !reflect.DeepEqual(rule["spec"], shipped["spec"]) {
		t.Errorf("the chart's PrometheusRule differs from deploy/prometheus/prometheus-rule.yaml:\nchart:   %s\nshipped: %s", toJSON(t, rule["spec"]), toJSON(t, shipped["spec"]))
	}
	copied, err := os.ReadFile(filepath.Join(chart, "files", "prometheus-rule.yaml"))
	if err != nil || !bytes.Equal(copied, raw) {
		t.Errorf("%s/files/prometheus-rule.yaml is not a copy of deploy/prometheus/prometheus-rule.yaml (%v): cp deploy/prometheus/prometheus-rule.yaml deploy/helm/%s/files/", chart, err, chart)
	}
	labels := rule["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v lack the ones given", labels)
	}
	if v, _ := env(container(t, r), "GOMEMLIMIT"); v != "921MiB" { // 90 % of 1Gi
		t.Errorf("GOMEMLIMIT %q, want 921MiB", v)
	}
	exempt := string(r.objects["ValidatingAdmissionPolicy/rel-rego-injector-protect-mutating"])
	for _, want := range []string{"'system:serviceaccount:injectors:rel-rego-injector'", "['platform-admins']"} {
		if !strings.Contains(exempt, want) {
			t.Errorf("the protection policy does not exempt %s", want)
		}
	}
}

func readObjects(t *testing.T, path string) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		unmarshal(t, doc, &head)
		if head.Kind != "" {
			out[head.Kind+"/"+head.Metadata.Name] = doc
		}
	}
}

func unmarshal(t *testing.T, doc []byte, v any) {
	t.Helper()
	if err := yaml.Unmarshal(doc, v); err != nil {
		t.Fatal(err)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRevisionConfigurations: every named revision of bundles.sources and every tag gets the
// configuration `rego-injector certs --revisions` and `tag set` write (engine/registration):
// the same entries with the same selectors and failure policy; and with the main configuration
// they are disjoint, as precheck judges them.
func TestRevisionConfigurations(t *testing.T) {
	r := render(t, "injectors", "-f", ciValues("bundles"))
	main, _ := webhooks(t, r)
	configs := []admissionregistrationv1.MutatingWebhookConfiguration{*main}
	for _, c := range []struct {
		kind registration.Kind
		name string
	}{{registration.Revision, "canary"}, {registration.Revision, "1-32"}, {registration.Tag, "prod"}, {registration.Tag, "next"}} {
		want, err := registration.Configuration(c.kind, c.name, registration.Options{
			ClientConfig:      registration.ServiceClientConfig("rel-rego-injector", "injectors", nil),
			InjectorNamespace: "injectors",
		})
		if err != nil {
			t.Fatal(err)
		}
		var got admissionregistrationv1.MutatingWebhookConfiguration
		r.get(t, "MutatingWebhookConfiguration/"+want.Name, &got)
		for key, value := range want.Labels {
			if got.Labels[key] != value {
				t.Errorf("%s: label %s=%q, want %q", want.Name, key, got.Labels[key], value)
			}
		}
		if len(got.Webhooks) != len(want.Webhooks) {
			t.Fatalf("%s: %d entries, want %d", want.Name, len(got.Webhooks), len(want.Webhooks))
		}
		for i, w := range want.Webhooks {
			g := got.Webhooks[i]
			if g.Name != w.Name || !equality.Semantic.DeepEqual(g.NamespaceSelector, w.NamespaceSelector) ||
				!equality.Semantic.DeepEqual(g.ObjectSelector, w.ObjectSelector) || *g.FailurePolicy != *w.FailurePolicy ||
				!equality.Semantic.DeepEqual(g.ClientConfig, w.ClientConfig) || !equality.Semantic.DeepEqual(g.Rules, w.Rules) {
				t.Errorf("%s entry %d:\n got %+v\nwant %+v", want.Name, i, g, w)
			}
		}
		configs = append(configs, got)
	}
	if r.has("MutatingWebhookConfiguration/rego-injector-rev-default") {
		t.Error("an unnamed source got a revision configuration: the main configuration routes revision default")
	}
	report := registration.Check(registration.State{Configurations: configs})
	if len(report.Overlaps) > 0 {
		t.Errorf("the chart's configurations overlap: %+v", report.Overlaps)
	}

	// A customised webhooks.objectSelector narrows the revisions' entries as it does the main ones.
	custom := render(t, "injectors", "-f", ciValues("bundles"), "--set-json",
		`webhooks.objectSelector={"matchLabels":{"mesh":"yes"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["batch"]}]}`)
	var got admissionregistrationv1.MutatingWebhookConfiguration
	custom.get(t, "MutatingWebhookConfiguration/rego-injector-tag-prod", &got)
	if len(got.Webhooks) == 0 {
		t.Fatal("the tag's configuration has no entries")
	}
	for _, w := range got.Webhooks {
		exprs := w.ObjectSelector.MatchExpressions
		if w.ObjectSelector.MatchLabels["mesh"] != "yes" || len(exprs) == 0 || exprs[len(exprs)-1].Key != "tier" {
			t.Errorf("%s: objectSelector %+v lacks the custom webhooks.objectSelector", w.Name, w.ObjectSelector)
		}
	}
}
