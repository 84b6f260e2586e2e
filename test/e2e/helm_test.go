package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// TestHelmChart installs the chart the way `helm template | kubectl apply --server-side` does and
// admits pods through its webhook configurations. No kubelet runs its Deployment here, so its
// webhooks point (webhooks.url) at a second injector process of this test's own, whose /metrics
// then count exactly what the chart's configurations send; its entries are narrowed to namespaces
// labelled e2e-helm, so that nothing else reaches it.
func TestHelmChart(t *testing.T) {
	e := need(t)
	inj, err := startInjector(t.Context(), e.cluster, os.Getenv("REGO_INJECTOR_BIN"), filepath.Join(t.TempDir(), "injector"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inj.stop)
	namespace(t, "helm-system", nil)

	values := map[string]any{
		"certificates":      map[string]any{"mode": "user-supplied", "userSupplied": map[string]any{"caBundle": string(inj.ca.CertPEM)}},
		"webhooks":          map[string]any{"url": inj.url, "namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "e2e-helm", "operator": "Exists"}}}},
		"webhookProtection": map[string]any{"enabled": true},
	}
	rendered := helmTemplate(t, "helm-e2e", "helm-system", values)
	out, stderr, err := e.cluster.kubectl(t.Context(), rendered, "apply", "--server-side", "--field-manager=helm-e2e", "-f", "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"deployment.apps/helm-e2e-rego-injector serverside-applied", "poddisruptionbudget.policy/helm-e2e-rego-injector",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/helm-e2e-rego-injector", "validatingwebhookconfiguration.admissionregistration.k8s.io/helm-e2e-rego-injector",
		"validatingadmissionpolicy.admissionregistration.k8s.io/helm-e2e-rego-injector-protect-mutating"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s was not applied:\n%s", want, out)
		}
	}
	t.Cleanup(func() {
		// The bindings first: until they are gone, the policy refuses to delete the configurations.
		_, _, _ = e.cluster.kubectl(context.Background(), "", "delete", "--ignore-not-found", "validatingadmissionpolicybinding/helm-e2e-rego-injector-protect-mutating", "validatingadmissionpolicybinding/helm-e2e-rego-injector-protect-validating")
		time.Sleep(2 * time.Second) // the apiserver drops the binding asynchronously
		_, _, _ = e.cluster.kubectl(context.Background(), rendered, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
	})
	var d struct {
		Spec struct{ Replicas int } `json:"spec"`
	}
	deployment, _, _ := e.cluster.kubectl(t.Context(), "", "get", "-n", "helm-system", "deployment/helm-e2e-rego-injector", "-o", "json")
	if err := yaml.Unmarshal([]byte(deployment), &d); err != nil || d.Spec.Replicas != 3 {
		t.Errorf("the applied Deployment has %d replicas (%v), want 3", d.Spec.Replicas, err)
	}

	namespace(t, "helm-injected", map[string]string{"istio-injection": "enabled", "e2e-helm": ""})
	pods := e.cluster.Client.CoreV1().Pods("helm-injected")
	create := func(pod *corev1.Pod) (*corev1.Pod, error) {
		return pods.Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	injections := func() float64 { return admissions(t, inj, "inject") }

	// The apiserver picks the configurations up asynchronously: wait until it calls the chart's. (It
	// may call an entry more than once for one pod: reinvocationPolicy IfNeeded.)
	before := injections()
	for deadline := time.Now().Add(60 * time.Second); injections() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the chart's MutatingWebhookConfiguration was not called within 60 s")
		}
		if _, err := create(simplePod("probe", "nginx")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	before = injections()
	pod, err := pods.Create(t.Context(), simplePod("web", "nginx"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasContainer(pod, "istio-proxy") || status(t, pod) == nil || injections() <= before {
		t.Fatalf("the pod was not injected through the chart's webhook: sidecar %v, %v admissions (before %v)", hasContainer(pod, "istio-proxy"), injections(), before)
	}

	// matchConditions: these pods never reach the webhook; the last one, whose label opts in before
	// its annotation opts out, does.
	hostNetwork := simplePod("host", "nginx")
	hostNetwork.Spec.HostNetwork = true
	annotatedOut := simplePod("annotated-out", "nginx")
	annotatedOut.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
	oursOut := simplePod("ours-out", "nginx")
	oursOut.Labels["rego-injector.io/inject"] = "false"
	labelIn := simplePod("label-in", "nginx")
	labelIn.Labels["sidecar.istio.io/inject"] = "true"
	labelIn.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
	for _, tc := range []struct {
		pod  *corev1.Pod
		sent bool
	}{{hostNetwork, false}, {annotatedOut, false}, {oursOut, false}, {labelIn, true}} {
		before := injections()
		got, err := create(tc.pod)
		if err != nil {
			t.Fatalf("%s: %v", tc.pod.Name, err)
		}
		if sent := injections() > before; sent != tc.sent {
			t.Errorf("%s: sent to the webhook %v, want %v", tc.pod.Name, sent, tc.sent)
		}
		if hasContainer(got, "istio-proxy") != tc.sent {
			t.Errorf("%s: injected %v, want %v", tc.pod.Name, hasContainer(got, "istio-proxy"), tc.sent)
		}
	}

	// The chart's ValidatingWebhookConfiguration denies what the policy denies.
	denials := admissionsWith(t, inj, `endpoint="validate"`, `result="denied"`)
	_, stderr, err = e.cluster.kubectl(t.Context(), sneakyPod, "apply", "-n", "helm-injected", "-f", "-")
	if err == nil || !strings.Contains(stderr, "denied the request") || !strings.Contains(stderr, "1337") {
		t.Fatalf("want the pod running as the proxy's UID denied: err %v, %q", err, stderr)
	}
	if after := admissionsWith(t, inj, `endpoint="validate"`, `result="denied"`); after <= denials {
		t.Errorf("the chart's validating webhook denied no pod (%v denials before, %v after)", denials, after)
	}

	testWebhookProtection(t, e)
}

// testWebhookProtection: with webhookProtection.enabled, the cluster's administrator (system:masters)
// may not delete the chart's webhook configurations nor weaken an entry, may still change a
// caBundle and labels, and the injector's ServiceAccount may do anything.
func testWebhookProtection(t *testing.T, e *environment) {
	admin := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	const name = "helm-e2e-rego-injector"
	dryRun := []string{metav1.DryRunAll}
	// The policy and its binding take effect asynchronously.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := admin.Delete(t.Context(), name, metav1.DeleteOptions{DryRun: dryRun})
		if err != nil && strings.Contains(err.Error(), "only the injector's ServiceAccount may delete") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleting the mutating configuration is not refused 30 s after the policy was applied: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	patch := func(client kubernetes.Interface, p string) error {
		_, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(t.Context(), name, types.JSONPatchType, []byte(p), metav1.PatchOptions{DryRun: dryRun})
		return err
	}
	weakenings := map[string]string{
		"failurePolicy":   `[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]`,
		"matchConditions": `[{"op":"add","path":"/webhooks/0/matchConditions/-","value":{"name":"never","expression":"false"}}]`,
		"selector":        `[{"op":"add","path":"/webhooks/0/objectSelector/matchLabels","value":{"nobody":"x"}}]`,
		"entry removed":   `[{"op":"remove","path":"/webhooks/2"}]`,
		"url":             `[{"op":"replace","path":"/webhooks/0/clientConfig/url","value":"https://127.0.0.1:1/inject"}]`,
	}
	for what, p := range weakenings {
		if err := patch(e.cluster.Client, p); err == nil || !strings.Contains(err.Error(), "only the injector's ServiceAccount may change") {
			t.Errorf("%s changed by the administrator: %v", what, err)
		}
	}
	ca := e.injector.ca.CertPEM // another CA than the chart's: a caBundle is anyone's to change
	allowed := map[string]string{
		"caBundle": fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":%q}]`, base64.StdEncoding.EncodeToString(ca)),
		"label":    `[{"op":"add","path":"/metadata/labels/team","value":"platform"}]`,
	}
	for what, p := range allowed {
		if err := patch(e.cluster.Client, p); err != nil {
			t.Errorf("%s refused: %v", what, err)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC through system:masters, the policy's exemption through the user name.
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:helm-system:helm-e2e-rego-injector", Groups: []string{"system:masters"}}
	injector, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := patch(injector, weakenings["failurePolicy"]); err != nil {
		t.Errorf("the injector's ServiceAccount may not change its configuration: %v", err)
	}
	if err := injector.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("the injector's ServiceAccount may not delete its configuration: %v", err)
	}
}

// helmTemplate renders deploy/helm/rego-injector with `go tool helm template` and the values given.
func helmTemplate(t *testing.T, release, namespace string, values map[string]any) string {
	t.Helper()
	raw, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "tool", "helm", "template", release, filepath.Join("..", "..", "deploy", "helm", "rego-injector"), "--namespace", namespace, "-f", file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// admissions sums rego_injector_admissions_total of an endpoint on the injector's /metrics.
func admissions(t *testing.T, inj *injectorProcess, endpoint string) float64 {
	return admissionsWith(t, inj, `endpoint="`+endpoint+`"`)
}

// admissionsWith sums the series of rego_injector_admissions_total that carry every label given
// (`result="denied"`).
func admissionsWith(t *testing.T, inj *injectorProcess, labels ...string) float64 {
	t.Helper()
	resp, err := inj.httpClient().Get(inj.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	s := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "rego_injector_admissions_total{") || !containsAll(line, labels) {
			continue
		}
		if f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += f
		}
	}
	return sum
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
