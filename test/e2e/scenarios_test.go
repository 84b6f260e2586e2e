package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if err := createNamespace(t.Context(), need(t).cluster, name, labels); err != nil {
		t.Fatal(err)
	}
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod, err := need(t).cluster.Client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// status reads the injection status annotation of pod.
func status(t *testing.T, pod *corev1.Pod) map[string]any {
	t.Helper()
	raw, ok := pod.Annotations["rego-injector.io/status"]
	if !ok {
		return nil
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	return st
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    app: %s%s
spec:
  containers:
  - name: app
    image: %s
`

// Scenario 1: a pod in an enabled namespace is injected; in an unlabelled one it is not, and the
// warning says why.
func TestPodInjectedByNamespaceLabel(t *testing.T) {
	e := need(t)
	namespace(t, "s1-enabled", map[string]string{"istio-injection": "enabled"})
	namespace(t, "s1-plain", nil)
	if _, _, err := e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, "web", "web", "", "nginx"), "apply", "-n", "s1-enabled", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	pod := getPod(t, "s1-enabled", "web")
	if countContainers(pod, "istio-proxy") != 1 || !hasContainer(pod, "istio-init") {
		t.Fatalf("not injected: %v", pod.Spec)
	}
	st := status(t, pod)
	if st == nil || st["variant"] != "sidecar" || st["revision"] != "default-1" || !strings.Contains(fmt.Sprint(st["reasons"]), `namespace "s1-enabled" is labelled istio-injection=enabled`) {
		t.Fatalf("status annotation %v", st)
	}
	_, stderr, err := e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, "web", "web", "", "nginx"), "apply", "-n", "s1-plain", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if pod := getPod(t, "s1-plain", "web"); hasContainer(pod, "istio-proxy") || status(t, pod) != nil {
		t.Fatalf("a pod in an unlabelled namespace was injected")
	}
	if !strings.Contains(stderr, "Warning: not injected:") || !strings.Contains(stderr, `namespace "s1-plain" is not labelled`) {
		t.Fatalf("kubectl showed no warning saying why: %q", stderr)
	}
}

// Scenario 2: a Deployment's pods, made by the controller-manager, arrive injected, and policy knew
// their owner as the Deployment.
func TestDeploymentPodsInjected(t *testing.T) {
	e := need(t)
	namespace(t, "s2", map[string]string{"istio-injection": "enabled"})
	if _, _, err := e.cluster.kubectl(t.Context(), deploymentYAML("shop"), "apply", "-n", "s2", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, "s2", "app=shop", 2)
	for _, pod := range pods {
		if countContainers(&pod, "istio-proxy") != 1 {
			t.Errorf("pod %s not injected", pod.Name)
			continue
		}
		if got := envOf(&pod, "istio-proxy", "ISTIO_META_WORKLOAD_NAME"); got != "shop" {
			t.Errorf("pod %s: the template saw owner %q, want the Deployment shop", pod.Name, got)
		}
	}
	// The injections are reported as Events on the ReplicaSet, the two replicas' aggregated.
	ev := waitEvent(t, "s2", "Injected", "ReplicaSet")
	if !strings.Contains(ev.Message, "injected with variant sidecar at revision") || ev.Type != corev1.EventTypeNormal || ev.Source.Component != "rego-injector" {
		t.Errorf("event %s %s from %s: %q", ev.Type, ev.Reason, ev.Source.Component, ev.Message)
	}
}

// waitEvent waits for an event with reason about an object of kind in ns.
func waitEvent(t *testing.T, ns, reason, kind string) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		list, err := need(t).cluster.Client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "reason=" + reason})
		if err == nil {
			for _, ev := range list.Items {
				if ev.InvolvedObject.Kind == kind {
					return ev
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s event about a %s in %s after 30 s", reason, kind, ns)
	return corev1.Event{}
}

// deploymentYAML is a Deployment of two nginx replicas labelled app=name.
func deploymentYAML(name string) string {
	return strings.ReplaceAll(`apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 2
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers: [{name: app, image: nginx}]
`, "NAME", name)
}

func waitPods(t *testing.T, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		list, err := need(t).cluster.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err == nil && len(list.Items) >= n {
			return list.Items
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("fewer than %d pods %s in %s after 60 s", n, selector, ns)
	return nil
}

func envOf(pod *corev1.Pod, container, name string) string {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...) {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

// Scenario 3: opt-out by annotation and by label, the image-selected variant, and the native
// variant for a Job.
func TestOptOutAndVariants(t *testing.T) {
	e := need(t)
	namespace(t, "s3", map[string]string{"istio-injection": "enabled"})
	apply := func(name, image, meta string) *corev1.Pod {
		t.Helper()
		if _, _, err := e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, name, name, meta, image), "apply", "-n", "s3", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		return getPod(t, "s3", name)
	}
	if pod := apply("opt-out-annotation", "nginx", "\n  annotations: {sidecar.istio.io/inject: \"false\"}"); hasContainer(pod, "istio-proxy") {
		t.Error("opt-out by annotation was injected")
	}
	// A bare pod's skip is reported on its namespace, with the decision's code.
	if ev := waitEvent(t, "s3", "InjectionSkipped", "Namespace"); !strings.Contains(ev.Message, "pod opt-out-annotation not injected (opted_out)") {
		t.Errorf("skip event %q", ev.Message)
	}
	if pod := apply("opt-out-label", "nginx", "\n    sidecar.istio.io/inject: \"false\""); hasContainer(pod, "istio-proxy") {
		t.Error("opt-out by label was injected")
	}
	redis := apply("cache", "docker.io/library/redis:7.2", "")
	if st := status(t, redis); st == nil || st["variant"] != "proxy-only" || hasContainer(redis, "istio-init") || !hasContainer(redis, "istio-proxy") {
		t.Errorf("redis: want the proxy-only variant, got status %v", st)
	}
	job := `apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    metadata: {labels: {app: migrate}}
    spec:
      restartPolicy: Never
      containers: [{name: app, image: migrate}]
`
	if _, _, err := e.cluster.kubectl(t.Context(), job, "apply", "-n", "s3", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	pod := waitPods(t, "s3", "app=migrate", 1)[0]
	native := false
	for _, c := range pod.Spec.InitContainers {
		if c.Name == "istio-proxy" && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			native = true
		}
	}
	if !native || hasContainerIn(pod.Spec.Containers, "istio-proxy") {
		t.Errorf("the Job's pod did not get the native sidecar: %+v", pod.Spec.InitContainers)
	}
}

func hasContainerIn(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// sneakyPod runs a container as the proxy's UID, which the validating rule proxy_uid refuses.
const sneakyPod = `apiVersion: v1
kind: Pod
metadata: {name: sneaky}
spec:
  containers:
  - name: app
    image: nginx
    securityContext: {runAsUser: 1337}
`

// Scenario 4: a policy violation is denied with our message; a warn shows as a kubectl warning.
func TestValidation(t *testing.T) {
	e := need(t)
	namespace(t, "s4", map[string]string{"istio-injection": "enabled"})
	_, stderr, err := e.cluster.kubectl(t.Context(), sneakyPod, "apply", "-n", "s4", "-f", "-")
	if err == nil || !strings.Contains(stderr, `rego-injector.io" denied the request`) || !strings.Contains(stderr, "1337") {
		t.Fatalf("want a denial from our validating webhook naming UID 1337: err %v, %q", err, stderr)
	}
	_, stderr, err = e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, "legacy", "legacy", "\n  annotations: {sidecar.istio.io/inject: \"false\"}", "nginx"), "apply", "-n", "s4", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "Warning:") || !strings.Contains(stderr, "label") {
		t.Fatalf("want a warning suggesting the label: %q", stderr)
	}
}

// Scenario 5: a server-side dry run runs both webhooks and persists nothing.
func TestServerDryRun(t *testing.T) {
	e := need(t)
	namespace(t, "s5", map[string]string{"istio-injection": "enabled"})
	out, _, err := e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, "dry", "dry", "", "nginx"), "apply", "--dry-run=server", "-n", "s5", "-o", "json", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(out), &pod); err != nil {
		t.Fatal(err)
	}
	if !hasContainer(&pod, "istio-proxy") {
		t.Error("the dry run did not run the mutating webhook")
	}
	if _, err := e.cluster.Client.CoreV1().Pods("s5").Get(t.Context(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run persisted the pod: %v", err)
	}
	_, stderr, err := e.cluster.kubectl(t.Context(), strings.Replace(fmt.Sprintf(podYAML, "dry", "dry", "", "nginx"), "image: nginx", "image: nginx\n    securityContext: {runAsUser: 1337}", 1), "apply", "--dry-run=server", "-n", "s5", "-f", "-")
	if err == nil || !strings.Contains(stderr, "1337") {
		t.Errorf("the dry run did not run the validating webhook: %q", stderr)
	}
}

// Scenario 7: namespace labels changed at run time are followed by the next pod.
func TestNamespaceLabelChange(t *testing.T) {
	e := need(t)
	namespace(t, "s7", nil)
	dry := func() *corev1.Pod {
		pod, err := e.cluster.Client.CoreV1().Pods("s7").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		return pod
	}
	if hasContainer(dry(), "istio-proxy") {
		t.Fatal("injected before the namespace was enabled")
	}
	patch := []byte(`{"metadata":{"labels":{"istio-injection":"enabled"}}}`)
	if _, err := e.cluster.Client.CoreV1().Namespaces().Patch(t.Context(), "s7", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !hasContainer(dry(), "istio-proxy") {
		if time.Now().After(deadline) {
			t.Fatal("pods in the namespace still not injected 10 s after it was enabled")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEnforcementModes: the same violation (a container running as the proxy's UID) is denied by
// default, admitted with a warning where the bundle sets the rule to warn, and admitted silently but
// counted where it is dryrun.
func TestEnforcementModes(t *testing.T) {
	e := need(t)
	for _, tc := range []struct {
		ns, mode string
	}{{"modes-deny", "deny"}, {"modes-warn", "warn"}, {"modes-dryrun", "dryrun"}} {
		namespace(t, tc.ns, map[string]string{"istio-injection": "enabled"})
		_, stderr, err := e.cluster.kubectl(t.Context(), sneakyPod, "apply", "-n", tc.ns, "-f", "-")
		switch tc.mode {
		case "deny":
			if err == nil || !strings.Contains(stderr, "denied the request") {
				t.Errorf("%s: want a denial, got err %v, %q", tc.ns, err, stderr)
			}
		case "warn":
			if err != nil || !strings.Contains(stderr, "Warning:") || !strings.Contains(stderr, "UID 1337") {
				t.Errorf("%s: want the pod admitted with a warning naming UID 1337, got err %v, %q", tc.ns, err, stderr)
			}
		case "dryrun":
			if err != nil || strings.Contains(stderr, "1337") {
				t.Errorf("%s: want the pod admitted silently, got err %v, %q", tc.ns, err, stderr)
			}
		}
	}
	resp, err := e.injector.httpClient().Get(e.injector.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, mode := range []string{"deny", "warn", "dryrun"} {
		if n := gauge(string(body), `rego_injector_policy_violations_total{mode="`+mode+`",rule="proxy_uid"}`); n < 1 {
			t.Errorf("policy_violations_total{rule=proxy_uid,mode=%s} = %v, want at least 1", mode, n)
		}
	}
}

// TestOverrideRefused: a proxy image from a registry the bundle does not allow is ignored: the pod
// gets the default image, the client a warning, and its namespace (a bare pod has no controller) an event.
func TestOverrideRefused(t *testing.T) {
	e := need(t)
	namespace(t, "overrides", map[string]string{"istio-injection": "enabled"})
	pod := fmt.Sprintf(podYAML, "custom", "custom", "\n  annotations: {sidecar.istio.io/proxyImage: \"evil.example.com/proxy:1\"}", "nginx")
	_, stderr, err := e.cluster.kubectl(t.Context(), pod, "apply", "-n", "overrides", "-f", "-")
	if err != nil || !strings.Contains(stderr, "outside the allowed registries") {
		t.Fatalf("want the pod admitted with a warning about the registry: err %v, %q", err, stderr)
	}
	got := getPod(t, "overrides", "custom")
	for _, c := range got.Spec.Containers {
		if c.Name == "istio-proxy" && c.Image != "docker.io/istio/proxyv2:1.28.0" {
			t.Errorf("proxy image %q, want the default", c.Image)
		}
	}
	if !hasContainer(got, "istio-proxy") {
		t.Fatal("pod not injected")
	}
	if ev := waitEvent(t, "overrides", "OverrideRefused", "Namespace"); ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "evil.example.com/proxy:1") {
		t.Errorf("event %s: %q", ev.Type, ev.Message)
	}
}

// Scenario 4b: `kubectl debug` adds an ephemeral container to a running injected pod through the
// pods/ephemeralcontainers subresource; one that runs as the proxy's UID is denied by policy, one
// that does not is added.
func TestEphemeralContainersValidated(t *testing.T) {
	e := need(t)
	namespace(t, "s4-debug", map[string]string{"istio-injection": "enabled"})
	if _, _, err := e.cluster.kubectl(t.Context(), fmt.Sprintf(podYAML, "web", "web", "", "nginx"), "apply", "-n", "s4-debug", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	pods := e.cluster.Client.CoreV1().Pods("s4-debug")
	debug := func(name string, uid int64) error {
		pod := getPod(t, "s4-debug", "web")
		pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: name, Image: "busybox:1.36", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
				SecurityContext: &corev1.SecurityContext{RunAsUser: &uid},
			},
		})
		_, err := pods.UpdateEphemeralContainers(t.Context(), "web", pod, metav1.UpdateOptions{})
		return err
	}
	err := debug("debugger-as-proxy", 1337)
	if err == nil || !strings.Contains(err.Error(), `rego-injector.io" denied the request`) || !strings.Contains(err.Error(), `ephemeral container "debugger-as-proxy"`) {
		t.Fatalf("want a denial from our validating webhook naming the ephemeral container: %v", err)
	}
	if err := debug("debugger", 1000); err != nil {
		t.Fatalf("an ephemeral container with another UID was refused: %v", err)
	}
	if pod := getPod(t, "s4-debug", "web"); len(pod.Spec.EphemeralContainers) != 1 || pod.Spec.EphemeralContainers[0].Name != "debugger" {
		t.Fatalf("ephemeral containers %v, want only debugger", pod.Spec.EphemeralContainers)
	}
}

const probedPod = `apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  containers:
  - name: app
    image: nginx
    ports: [{containerPort: 8080, name: http}]
    readinessProbe: {httpGet: {path: /ready, port: http}}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 7}
    startupProbe: {grpc: {port: 9090}}
`

// Scenario 4c: the app's probes are rewritten through the agent, and the apiserver accepts the pod
// (a probe has exactly one handler, the port is a number): the kubelet will call the agent.
func TestProbesRewritten(t *testing.T) {
	e := need(t)
	namespace(t, "s4-probes", map[string]string{"istio-injection": "enabled"})
	if _, stderr, err := e.cluster.kubectl(t.Context(), probedPod, "apply", "-n", "s4-probes", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	pod := getPod(t, "s4-probes", "probed")
	app := pod.Spec.Containers[0]
	for kind, p := range map[string]*corev1.Probe{"readyz": app.ReadinessProbe, "livez": app.LivenessProbe, "startupz": app.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/app-health/app/"+kind || p.HTTPGet.Port.IntValue() != 15020 || p.TCPSocket != nil || p.GRPC != nil {
			t.Errorf("%s probe not rewritten: %+v", kind, p)
		}
	}
	if app.LivenessProbe.PeriodSeconds != 7 {
		t.Errorf("the liveness probe lost its period: %+v", app.LivenessProbe)
	}
	// The webhook sees the pod after the apiserver's defaulting (scheme, timeouts, gRPC service), as
	// Istio's does.
	want := `{"/app-health/app/livez":{"tcpSocket":{"port":8080},"timeoutSeconds":1},"/app-health/app/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTP"},"timeoutSeconds":1},"/app-health/app/startupz":{"grpc":{"port":9090,"service":""},"timeoutSeconds":1}}`
	if got := envOf(pod, "istio-proxy", "ISTIO_KUBE_APP_PROBERS"); got != want {
		t.Errorf("ISTIO_KUBE_APP_PROBERS = %s, want %s", got, want)
	}
}
