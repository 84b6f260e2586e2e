package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lateMutator is a second mutating webhook that adds a container after ours has run.
func lateMutator(t *testing.T, ca *authority) string {
	t.Helper()
	serving, err := ca.issue(nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.certPEM, serving.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		var pod corev1.Pod
		_ = json.Unmarshal(review.Request.Object.Raw, &pod)
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		if !hasContainer(&pod, "late") {
			pt := admissionv1.PatchTypeJSONPatch
			resp.PatchType = &pt
			resp.Patch = []byte(`[{"op":"add","path":"/spec/containers/-","value":{"name":"late","image":"busybox"}}]`)
		}
		review.Response, review.Request = resp, nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// Scenario 6: a second mutating webhook changes the pod after us; with reinvocationPolicy
// IfNeeded the apiserver calls us again, and the pod ends with exactly one sidecar.
func TestReinvocation(t *testing.T) {
	e := need(t)
	namespace(t, "s6", map[string]string{"istio-injection": "enabled", "e2e-late": "true"})
	ca, err := newAuthority("late CA")
	if err != nil {
		t.Fatal(err)
	}
	url := lateMutator(t, ca)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-late-mutator"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "late.e2e.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca.CertPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"e2e-late": "true"}},
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	client := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := client.Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		pod, err := e.cluster.Client.CoreV1().Pods("s6").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("create with two mutating webhooks: %v", err)
		}
		if hasContainer(pod, "late") {
			if n := countContainers(pod, "istio-proxy"); n != 1 {
				t.Fatalf("%d sidecars after reinvocation", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the second webhook was never called")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// Scenario 8: the webhook down. The shipped configuration, pointed at a port where nothing listens:
// in a namespace that asked for sidecars (failurePolicy Fail) creation is refused with a clear
// error; in an unlabelled one (Ignore) the pod is admitted untouched. Each entry is narrowed to the
// namespaces of this test.
func TestWebhookDown(t *testing.T) {
	e := need(t)
	port, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	mwc, _, err := shippedWebhooks(fmt.Sprintf("https://127.0.0.1:%d", port), e.injector.ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	mwc.Name = "e2e-down"
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		w.Name = "down-" + w.Name
		w.NamespaceSelector.MatchExpressions = append(w.NamespaceSelector.MatchExpressions,
			metav1.LabelSelectorRequirement{Key: "e2e-down", Operator: metav1.LabelSelectorOpExists})
	}
	namespace(t, "s8-enabled", map[string]string{"e2e-down": "", "istio-injection": "enabled"})
	namespace(t, "s8-plain", map[string]string{"e2e-down": ""})
	client := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := client.Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	create := func(ns string) (*corev1.Pod, error) {
		return e.cluster.Client.CoreV1().Pods(ns).Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	var refusal error
	for deadline := time.Now().Add(30 * time.Second); refusal == nil; {
		if _, err := create("s8-enabled"); err != nil {
			refusal = err
		} else if time.Now().After(deadline) {
			t.Fatal("failurePolicy Fail: pods still admitted 30 s after the dead webhook was registered")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(refusal.Error(), `failed calling webhook "down-inject.rego-injector.io"`) {
		t.Fatalf("the refusal does not say which webhook failed: %v", refusal)
	}
	// The configuration is active (it refused above): the optional entry lets this one through.
	pod, err := create("s8-plain")
	if err != nil {
		t.Fatalf("failurePolicy Ignore: a pod in an unlabelled namespace was refused: %v", err)
	}
	if hasContainer(pod, "istio-proxy") || status(t, pod) != nil {
		t.Fatal("failurePolicy Ignore: the pod was changed")
	}
}

// Scenario 9: the serving certificate is replaced on disk while pods keep being created: no
// admission fails, and the new certificate is served without a restart.
func TestCertificateRotation(t *testing.T) {
	e := need(t)
	namespace(t, "s9", map[string]string{"istio-injection": "enabled"})
	serial := func() string {
		pool := x509.NewCertPool()
		pool.AddCert(e.injector.ca.Cert)
		conn, err := tls.Dial("tcp", strings.TrimPrefix(e.injector.url, "https://"), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("dial the injector: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()

	var created, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			pod, err := e.cluster.Client.CoreV1().Pods("s9").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil || !hasContainer(pod, "istio-proxy") {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprint(err))
				continue
			}
			created.Add(1)
		}
	}()
	time.Sleep(time.Second)
	renewed, err := e.injector.ca.issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := renewed.write(e.injector.dir, "tls"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for serial() == before {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is not served 20 s after it was written")
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || created.Load() < 20 {
		t.Fatalf("%d admissions succeeded and %d failed during rotation (first error: %v)", created.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("%d admissions, none failed, while the certificate was rotated", created.Load())
}

// Scenario 10: every overlay under deploy/ renders with kustomize, and the default and dev ones
// apply with a server-side dry run; every manifest is part of the kustomization.
func TestDeployManifestsApply(t *testing.T) {
	e := need(t)
	// Namespaced objects need their namespace to exist for a server-side dry run.
	namespace(t, "rego-injector-system", nil)
	deploy := filepath.Join("..", "..", "deploy")
	overlays, _ := filepath.Glob(filepath.Join(deploy, "overlays", "*"))
	if len(overlays) < 3 {
		t.Fatalf("overlays: %v", overlays)
	}
	for _, overlay := range overlays {
		t.Run(filepath.Base(overlay), func(t *testing.T) {
			rendered, _, err := e.cluster.kubectl(t.Context(), "", "kustomize", overlay)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(overlay) == "cert-manager" {
				// cert-manager's kinds are not installed here; the rest must still be valid.
				if !strings.Contains(rendered, "cert-manager.io/inject-ca-from: rego-injector-system/rego-injector-serving") {
					t.Error("the webhooks do not ask cert-manager for their caBundle")
				}
				return
			}
			out, stderr, err := e.cluster.kubectl(t.Context(), rendered, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			for _, want := range []string{"namespace/rego-injector-system", "serviceaccount/rego-injector", "deployment.apps/rego-injector", "service/rego-injector",
				"mutatingwebhookconfiguration.admissionregistration.k8s.io/rego-injector", "validatingwebhookconfiguration.admissionregistration.k8s.io/rego-injector"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s was not applied:\n%s", want, out)
				}
			}
		})
	}
	kustomization, err := os.ReadFile(filepath.Join(deploy, "base", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(deploy, "base", "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !strings.Contains(string(kustomization), "- "+base) {
			t.Errorf("%s is not listed in deploy/base/kustomization.yaml", base)
		}
	}
}

// TestCertsCommand: `rego-injector certs` writes the TLS Secret for the Service's names and patches
// the CA into every webhook of the shipped configurations; run again, it keeps what is still good.
func TestCertsCommand(t *testing.T) {
	e := need(t)
	namespace(t, "rego-injector-system", nil)
	base, _, err := e.cluster.kubectl(t.Context(), "", "kustomize", filepath.Join("..", "..", "deploy", "base"))
	if err != nil {
		t.Fatal(err)
	}
	// Only the webhook configurations, and narrowed to no namespace, so that pods elsewhere are not
	// sent to a Service that does not run here.
	var webhooks []string
	for _, doc := range strings.Split(base, "\n---\n") {
		if strings.Contains(doc, "WebhookConfiguration\n") {
			webhooks = append(webhooks, strings.ReplaceAll(doc, "matchExpressions:\n", "matchExpressions:\n    - {key: e2e-never, operator: Exists}\n"))
		}
	}
	if len(webhooks) != 2 {
		t.Fatalf("want two webhook configurations in the base, found %d", len(webhooks))
	}
	if _, stderr, err := e.cluster.kubectl(t.Context(), strings.Join(webhooks, "\n---\n"), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	t.Cleanup(func() {
		_, _, _ = e.cluster.kubectl(context.Background(), "", "delete", "mutatingwebhookconfiguration/rego-injector", "validatingwebhookconfiguration/rego-injector")
	})
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), os.Getenv("REGO_INJECTOR_BIN"), append([]string{"certs", "--kubeconfig", e.cluster.Kubeconfig}, args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rego-injector certs: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run()
	if !strings.Contains(out, "new serving certificate") || strings.Count(out, "caBundle patched") != 2 {
		t.Fatalf("first run: %s", out)
	}
	secret, err := e.cluster.Client.CoreV1().Secrets("rego-injector-system").Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatal("ca.crt is not a certificate")
	}
	pair, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "rego-injector.rego-injector-system.svc"}); err != nil {
		t.Fatalf("the serving certificate does not verify for the Service: %v", err)
	}
	mwc, err := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), "rego-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vwc, err := e.cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(t.Context(), "rego-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range mwc.Webhooks {
		if string(w.ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
			t.Errorf("%s: caBundle is not the Secret's CA", w.Name)
		}
	}
	for _, w := range vwc.Webhooks {
		if string(w.ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
			t.Errorf("%s: caBundle is not the Secret's CA", w.Name)
		}
	}
	if out := run(); !strings.Contains(out, "still good, kept") || strings.Contains(out, "patched") {
		t.Errorf("second run changed something: %s", out)
	}
	out = run("--renew")
	renewed, _ := e.cluster.Client.CoreV1().Secrets("rego-injector-system").Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
	if !strings.Contains(out, "new serving certificate") || string(renewed.Data["tls.crt"]) == string(secret.Data["tls.crt"]) || string(renewed.Data["ca.crt"]) != string(secret.Data["ca.crt"]) {
		t.Errorf("--renew must issue a new serving certificate under the same CA: %s", out)
	}
}
