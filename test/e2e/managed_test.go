package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestManagedCertificates: two replicas of `serve --manage-certs` share one Secret. They make the
// CA and serving certificate, patch the caBundle of the webhook configuration, renew the serving
// certificate before it expires while the apiserver keeps calling them (no admission fails), and
// serve the same certificate.
func TestManagedCertificates(t *testing.T) {
	e := need(t)
	const ns = "e2e-managed-system"
	namespace(t, ns, nil)
	namespace(t, "s11", map[string]string{"istio-injection": "enabled", "e2e-managed": "true"})
	var replicas []string
	for i := range 2 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := start(t.TempDir(), fmt.Sprintf("managed-%d", i), cleanEnv(), e.injector.bin, "serve",
			"--listen", addr, "--kubeconfig", e.cluster.kubeconfig, "--injector-namespace", ns,
			"--manage-certs", "--cert-hosts", "127.0.0.1", "--webhook-configurations", "e2e-managed",
			// A minute of validity renewed with 45 s left: a renewal within the test.
			"--cert-validity", "60s", "--cert-renew-before", "45s", "--cert-check-interval", "2s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.stop)
		replicas = append(replicas, addr)
	}
	// The configuration as shipped, narrowed to this test's namespace, without a caBundle: the
	// replicas must patch it in.
	mwc, _, err := shippedWebhooks("https://"+replicas[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	mwc.Name = "e2e-managed"
	mwc.Webhooks = mwc.Webhooks[:1]
	mwc.Webhooks[0].Name = "managed.rego-injector.io"
	mwc.Webhooks[0].NamespaceSelector.MatchExpressions = append(mwc.Webhooks[0].NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: "e2e-managed", Operator: metav1.LabelSelectorOpExists})
	client := e.cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := client.Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Delete(t.Context(), mwc.Name, metav1.DeleteOptions{}) })

	secret := func() []byte {
		s, err := e.cluster.client.CoreV1().Secrets(ns).Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return s.Data["ca.crt"]
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cfg, err := client.Get(t.Context(), mwc.Name, metav1.GetOptions{})
		if err == nil && len(cfg.Webhooks[0].ClientConfig.CABundle) > 0 && string(cfg.Webhooks[0].ClientConfig.CABundle) == string(secret()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replicas did not patch the caBundle within 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(secret())
	serial := func(addr string) string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial(replicas[0])

	// Admissions through replica 0 until the certificate has been renewed.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline = time.Now().Add(45 * time.Second)
	for serial(replicas[0]) == first {
		if time.Now().After(deadline) {
			t.Fatal("the serving certificate was not renewed within 45 s")
		}
		pod, err := e.cluster.client.CoreV1().Pods("s11").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || !hasContainer(pod, "istio-proxy") {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Sprint(err))
		} else {
			ok.Add(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Fatalf("%d admissions succeeded, %d failed across the renewal (first error: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	// Both replicas converge on the Secret's certificate within a check interval or two.
	deadline = time.Now().Add(10 * time.Second)
	for serial(replicas[0]) != serial(replicas[1]) {
		if time.Now().After(deadline) {
			t.Fatal("the replicas serve different certificates")
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%d admissions across a certificate renewal, none failed; both replicas serve one certificate", ok.Load())
}
