package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/engine/certs"
)

// The release and namespace of docs/install.md's leading path.
const (
	guideRelease   = "rego-injector"
	guideNamespace = "rego-injector-system"
)

// TestHelmInstall follows the leading path of docs/install.md with the commands it gives: `make
// image-push` and `make bundle-push` to a private registry on 127.0.0.1, its credentials as a
// Secret, `go tool helm install` with that image and the OCI bundle, the namespace labels, a
// namespace enabled and the guide's pod applied and read back with kubectl, then `helm upgrade` to
// a new image tag and `helm uninstall`.
//
// No kubelet runs the release's Deployment. A process of the test's own stands in for its replica:
// it runs the container's arguments as the release stored them (self-managed certificates, the OCI
// bundle), as the release's ServiceAccount, so the chart's RBAC must be enough for it; the only
// value the guide does not give is webhooks.url, which points the release's webhooks at it.
func TestHelmInstall(t *testing.T) {
	e := need(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	// A private registry: every request needs the user name and token (basic authentication).
	const registryUser, registryToken = "e2e", "e2e-token"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(registryUser+":"+registryToken))
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	// What `docker login` leaves, for the pushes and for checkPulled.
	dockerConfig := t.TempDir()
	login := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, strings.TrimPrefix(basic, "Basic "))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	image := host + "/rego-injector"
	// A registry on a loopback address is spoken to over plain HTTP, which the OCI source must be
	// told in its scheme (docs/bundles.md#from-an-oci-registry).
	bundleRef := host + "/policies/rego-injector:v1"
	bundleSource := "oci+http://" + bundleRef

	// Build and push the image and the bundle.
	out := runIn(t, repo, "make", "image-push", "IMAGE="+image+":e2e-1")
	if !regexp.MustCompile(`pushed ` + regexp.QuoteMeta(image) + `:e2e-1@sha256:[0-9a-f]{64}`).MatchString(out) {
		t.Fatalf("make image-push did not say what it pushed:\n%s", out)
	}
	out = runIn(t, repo, "make", "bundle-push", "REGISTRY="+bundleRef)
	if !regexp.MustCompile(`pushed build/default.tar.gz to ` + regexp.QuoteMeta(bundleRef) + `@sha256:[0-9a-f]{64}`).MatchString(out) {
		t.Fatalf("make bundle-push did not say what it pushed:\n%s", out)
	}
	t.Logf("image and bundle built and pushed in %s", time.Since(started).Round(time.Second))

	// The replica's address is known before the install, so that webhooks.url can name it.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	testValues := filepath.Join(t.TempDir(), "e2e-values.yaml")
	if err := os.WriteFile(testValues, []byte("webhooks:\n  url: https://"+listen+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	helm := helmCommand(t, repo, e.cluster.Kubeconfig)

	// Credentials for the private registry, then the install.
	t.Cleanup(func() { cleanUpGuideInstall(t, e) })
	if _, stderr, err := e.cluster.kubectl(t.Context(), "", "create", "namespace", guideNamespace); err != nil && !strings.Contains(stderr, "AlreadyExists") {
		t.Fatal(err)
	}
	kubectl(t, e, "", "create", "secret", "docker-registry", "registry-credentials", "-n", guideNamespace,
		"--docker-server="+host, "--docker-username="+registryUser, "--docker-password="+registryToken)
	helm("install", guideRelease, "deploy/helm/rego-injector",
		"--namespace", guideNamespace, "--create-namespace",
		"--set", "image.repository="+image, "--set", "image.tag=e2e-1",
		"--set", "bundles.sources[0]="+bundleSource,
		"--set", "imagePullSecrets[0].name=registry-credentials",
		"--set", "bundles.registryCredentialsSecret=registry-credentials",
		"-f", testValues)
	kubectl(t, e, "", "label", "namespace", guideNamespace, "istio-injection=disabled", "pod-security.kubernetes.io/enforce=restricted")
	manifest := helm("get", "manifest", guideRelease, "-n", guideNamespace)
	objects := strings.Fields(kubectl(t, e, manifest, "get", "-f", "-", "-o", "name"))
	for _, want := range []string{"deployment.apps/rego-injector", "service/rego-injector", "serviceaccount/rego-injector",
		"clusterrole.rbac.authorization.k8s.io/rego-injector", "mutatingwebhookconfiguration.admissionregistration.k8s.io/rego-injector",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/rego-injector"} {
		if !slices.Contains(objects, want) {
			t.Errorf("helm install did not create %s; the release holds %v", want, objects)
		}
	}
	checkRelease(t, helm, 1)

	deployment, err := e.cluster.Client.AppsV1().Deployments(guideNamespace).Get(t.Context(), guideRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	container := deployment.Spec.Template.Spec.Containers[0]
	if container.Image != image+":e2e-1" {
		t.Errorf("the Deployment runs %s, want %s:e2e-1", container.Image, image)
	}
	checkPulled(t, container.Image)
	if ps := deployment.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "registry-credentials" {
		t.Errorf("the Deployment's imagePullSecrets: %v", ps)
	}
	if !slices.Contains(container.Args, "--bundle="+bundleSource) || !slices.Contains(container.Args, "--manage-certs") {
		t.Errorf("the Deployment's arguments lack the OCI bundle or --manage-certs: %v", container.Args)
	}

	// The stand-in replica: it makes the certificate, patches the caBundle, and loads the bundle
	// from the registry before it is ready.
	replica := startReplica(t, e, deployment.Spec.Template.Spec, listen)
	inj := &injectorProcess{proc: replica.proc, url: "https://" + listen, ca: replica.ca}
	if !strings.Contains(replica.ready, `"revision":"default-1"`) {
		t.Errorf("the replica's /readyz does not name the bundle's revision: %s", replica.ready)
	}

	// Enable a namespace and create the guide's pod in it.
	kubectl(t, e, "", "create", "namespace", "demo")
	kubectl(t, e, "", "label", "namespace", "demo", "istio-injection=enabled")
	if err := createNamespace(t.Context(), e.cluster, "demo", nil); err != nil { // its ServiceAccount
		t.Fatal(err)
	}
	waitCalled(t, e, inj, "demo")
	web := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(web, []byte(guidePod), 0o600); err != nil {
		t.Fatal(err)
	}
	before := admissionsWith(t, inj, `endpoint="inject"`, `result="injected"`)
	kubectl(t, e, "", "apply", "-n", "demo", "-f", web)
	if after := admissionsWith(t, inj, `endpoint="inject"`, `result="injected"`); after <= before {
		t.Errorf("the release's webhook did not inject the pod: %v injections before, %v after", before, after)
	}
	if got := kubectl(t, e, "", "-n", "demo", "get", "pod", "web", "-o", `jsonpath={.spec.initContainers[*].name} / {.spec.containers[*].name}{"\n"}`); got != "istio-init istio-proxy / app\n" {
		t.Errorf("the pod's containers: %q, want %q", got, "istio-init istio-proxy / app\n")
	}
	var st struct {
		Variant, Revision string
		Reasons           []string
	}
	raw := kubectl(t, e, "", "-n", "demo", "get", "pod", "web", "-o", `jsonpath={.metadata.annotations.rego-injector\.io/status}`)
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.Variant != "sidecar" || st.Revision != "default-1" || !slices.Equal(st.Reasons, guideReasons) {
		t.Errorf("the status annotation: %s (%v), want the variant sidecar, the revision default-1 and the reasons %q", raw, err, guideReasons)
	}
	caBundle := webhookCABundles(t, e)

	// Upgrade to a new image tag; the caBundle the replica patched in stays, and pods are still
	// injected through the release's webhooks.
	runIn(t, repo, "make", "image-push", "IMAGE="+image+":e2e-2")
	helm("upgrade", guideRelease, "deploy/helm/rego-injector", "-n", guideNamespace, "--reuse-values", "--set", "image.tag=e2e-2")
	checkRelease(t, helm, 2)
	deployment, err = e.cluster.Client.AppsV1().Deployments(guideNamespace).Get(t.Context(), guideRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := deployment.Spec.Template.Spec.Containers[0]; got.Image != image+":e2e-2" || !slices.Contains(got.Args, "--bundle="+bundleSource) {
		t.Errorf("after the upgrade the Deployment runs %s with %v, want %s:e2e-2 and the same bundle", got.Image, got.Args, image)
	}
	checkPulled(t, image+":e2e-2")
	if got := webhookCABundles(t, e); got != caBundle {
		t.Errorf("helm upgrade changed the webhooks' caBundle:\nbefore %s\nafter  %s", caBundle, got)
	}
	before = admissionsWith(t, inj, `endpoint="inject"`, `result="injected"`)
	pod, err := e.cluster.Client.CoreV1().Pods("demo").Create(t.Context(), simplePod("after-upgrade", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil || !hasContainer(pod, "istio-proxy") || admissionsWith(t, inj, `endpoint="inject"`, `result="injected"`) <= before {
		t.Errorf("after the upgrade a pod is not injected through the release's webhook: %v", err)
	}

	// Uninstall: every object of the release is gone; the Secret the replica made stays.
	helm("uninstall", guideRelease, "-n", guideNamespace)
	if left := strings.TrimSpace(kubectl(t, e, manifest, "get", "-f", "-", "--ignore-not-found", "-o", "name")); left != "" {
		t.Errorf("helm uninstall left objects of the release:\n%s", left)
	}
	if list := helm("list", "-n", guideNamespace, "-q"); strings.TrimSpace(list) != "" {
		t.Errorf("helm list after the uninstall: %q", list)
	}
	if _, err := e.cluster.Client.CoreV1().Secrets(guideNamespace).Get(t.Context(), "rego-injector-tls", metav1.GetOptions{}); err != nil {
		t.Errorf("the Secret the injector made should stay after helm uninstall: %v", err)
	}
	kubectl(t, e, "", "delete", "secret", "rego-injector-tls", "-n", guideNamespace)
	t.Logf("the guide's path, from make image-push to helm uninstall, in %s", time.Since(started).Round(time.Second))
}

// guidePod is web.yaml of docs/install.md.
const guidePod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: nginx
`

// guideReasons are the reasons step 7 of docs/install.md shows for web.yaml in the namespace demo.
var guideReasons = []string{
	`namespace "demo" is labelled istio-injection=enabled`,
	"the global injection policy is enabled: pods in enabled namespaces are injected unless they opt out",
	"no variant requested and no image rule matched: default variant sidecar",
	"config native_sidecars is true: istio-proxy runs as a native sidecar (an init container with restartPolicy: Always)",
}

// runIn runs a command of the guide in the repository and returns its combined output.
func runIn(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kubectl runs the cluster's kubectl as its administrator and returns its output.
func kubectl(t *testing.T, e *environment, stdin string, args ...string) string {
	t.Helper()
	out, _, err := e.cluster.kubectl(t.Context(), stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helmCommand returns a function that runs `go tool helm` in the repository against the cluster,
// with Helm's own configuration, cache and data under the test's directory.
func helmCommand(t *testing.T, repo, kubeconfig string) func(args ...string) string {
	home := t.TempDir()
	env := append(cleanEnv(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"), "KUBECONFIG="+kubeconfig)
	return func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "go", append([]string{"tool", "helm"}, args...)...)
		cmd.Dir = repo
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
}

// checkRelease checks that helm lists the release as deployed at the revision.
func checkRelease(t *testing.T, helm func(...string) string, revision int) {
	t.Helper()
	var releases []struct {
		Name, Status, Revision string
	}
	if err := json.Unmarshal([]byte(helm("list", "-n", guideNamespace, "-o", "json")), &releases); err != nil {
		t.Fatal(err)
	}
	if len(releases) != 1 || releases[0].Name != guideRelease || releases[0].Status != "deployed" || releases[0].Revision != fmt.Sprint(revision) {
		t.Errorf("helm list: %+v, want %s deployed at revision %d", releases, guideRelease, revision)
	}
}

// checkPulled checks that the registry serves the image reference, for both platforms.
func checkPulled(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r, remote.WithContext(t.Context()), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		t.Fatalf("the registry does not serve %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" {
			platforms = append(platforms, d.Platform.Architecture)
		}
	}
	if !slices.Contains(platforms, "amd64") || !slices.Contains(platforms, "arm64") {
		t.Errorf("%s holds the platforms %v, want linux/amd64 and linux/arm64", ref, platforms)
	}
}

type replica struct {
	proc  *process
	ca    *authority
	ready string
}

// startReplica runs the Deployment's container as a process: its arguments but --listen, its
// plain environment, its Secret volumes, the release namespace, and a kubeconfig that acts as the
// release's ServiceAccount. --cert-hosts adds the address the webhooks call to the certificate. It waits
// until the replica has patched the caBundle and answers /readyz.
func startReplica(t *testing.T, e *environment, pod corev1.PodSpec, listen string) *replica {
	t.Helper()
	c := pod.Containers[0]
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "serviceaccount.kubeconfig")
	admin, err := os.ReadFile(e.cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa := "system:serviceaccount:" + guideNamespace + ":" + guideRelease
	// The administrator's token, impersonating the ServiceAccount and its groups: RBAC decides as
	// it would for the pod's own token.
	impersonated := strings.Replace(string(admin), "user: {token:", fmt.Sprintf(`user: {as: %q, as-groups: [system:serviceaccounts, "system:serviceaccounts:%s", system:authenticated], token:`, sa, guideNamespace), 1)
	if impersonated == string(admin) {
		t.Fatal("cannot write the ServiceAccount's kubeconfig from the administrator's")
	}
	if err := os.WriteFile(kubeconfig, []byte(impersonated), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig=" + kubeconfig, "--cert-hosts=127.0.0.1"}
	for _, a := range c.Args[1:] { // serve first
		if strings.HasPrefix(a, "--listen=") {
			a = "--listen=" + listen
		}
		args = append(args, a)
	}
	// The Secret volumes, written as the kubelet mounts them, and the environment pointed at them.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			secret, err := e.cluster.Client.CoreV1().Secrets(guideNamespace).Get(t.Context(), v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			mounts[m.MountPath] = t.TempDir()
			for _, item := range v.Secret.Items {
				if err := os.WriteFile(filepath.Join(mounts[m.MountPath], item.Path), secret.Data[item.Key], 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	env := cleanEnv()
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_CONFIG=") })
	env = append(env, "POD_NAMESPACE="+guideNamespace, "TMPDIR="+t.TempDir()) // /tmp is the Deployment's emptyDir
	for _, v := range c.Env {
		if v.ValueFrom == nil {
			value := v.Value
			if dir, ok := mounts[value]; ok {
				value = dir
			}
			env = append(env, v.Name+"="+value)
		}
	}
	if !slices.Contains(env, "DOCKER_CONFIG="+mounts["/etc/rego-injector/registry"]) {
		t.Errorf("the registry credentials are not mounted as DOCKER_CONFIG: %v, %v", c.Env, c.VolumeMounts)
	}
	p, err := start(dir, "replica", env, os.Getenv("REGO_INJECTOR_BIN"), append([]string{c.Args[0]}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)

	r := &replica{proc: p}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && r.ready == "" {
		time.Sleep(200 * time.Millisecond)
		if p.Exited() {
			break
		}
		secret, err := e.cluster.Client.CoreV1().Secrets(guideNamespace).Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
		if err != nil || webhookCABundles(t, e) != strings.Repeat(string(secret.Data["ca.crt"]), 5) {
			continue // the three mutating and two validating entries carry the Secret's CA
		}
		block, _ := pem.Decode(secret.Data["ca.crt"])
		if block == nil {
			t.Fatal("ca.crt of the Secret is not PEM")
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		r.ca = &authority{&certs.Authority{Cert: ca, CertPEM: secret.Data["ca.crt"]}}
		resp, err := (&injectorProcess{ca: r.ca}).httpClient().Get("https://" + listen + "/readyz")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			r.ready = string(body)
		}
	}
	if r.ready == "" {
		t.Fatalf("the replica did not patch the caBundle and become ready within 60 s:\n%s", p.Tail(30))
	}
	return r
}

// webhookCABundles concatenates the caBundle of every entry of the release's two configurations.
func webhookCABundles(t *testing.T, e *environment) string {
	t.Helper()
	var all strings.Builder
	mwc, err := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), guideRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range mwc.Webhooks {
		all.Write(w.ClientConfig.CABundle)
	}
	vwc, err := e.cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(t.Context(), guideRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		all.Write(w.ClientConfig.CABundle)
	}
	return all.String()
}

// waitCalled waits until the apiserver, which picks configurations up asynchronously, sends pods
// of the namespace to the replica.
func waitCalled(t *testing.T, e *environment, inj *injectorProcess, ns string) {
	t.Helper()
	before := admissions(t, inj, "inject")
	for deadline := time.Now().Add(60 * time.Second); admissions(t, inj, "inject") == before; {
		if time.Now().After(deadline) {
			t.Fatalf("the release's webhooks were not called within 60 s:\n%s", inj.proc.Tail(20))
		}
		_, _ = e.cluster.Client.CoreV1().Pods(ns).Create(t.Context(), simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		time.Sleep(250 * time.Millisecond)
	}
}

// cleanUpGuideInstall removes what the guide's path leaves, so that later tests find the names
// free: the release if a failure left it, the Secret, the demo namespace and the labels.
func cleanUpGuideInstall(t *testing.T, e *environment) {
	ctx := t.Context()
	if out, _, _ := e.cluster.kubectl(ctx, "", "get", "mutatingwebhookconfiguration", guideRelease, "--ignore-not-found", "-o", "name"); out != "" {
		cmd := exec.CommandContext(ctx, "go", "tool", "helm", "uninstall", guideRelease, "-n", guideNamespace, "--kubeconfig", e.cluster.Kubeconfig)
		cmd.Dir = filepath.Join("..", "..")
		_ = cmd.Run()
	}
	_, _, _ = e.cluster.kubectl(ctx, "", "delete", "--ignore-not-found", "--wait=false", "-n", guideNamespace, "secret/rego-injector-tls", "secret/registry-credentials")
	_, _, _ = e.cluster.kubectl(ctx, "", "delete", "--ignore-not-found", "--wait=false", "namespace/demo")
	_, _, _ = e.cluster.kubectl(ctx, "", "label", "namespace", guideNamespace, "istio-injection-", "pod-security.kubernetes.io/enforce-")
}
