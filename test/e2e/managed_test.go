package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
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
			"--listen", addr, "--kubeconfig", e.cluster.Kubeconfig, "--injector-namespace", ns,
			"--manage-certs", "--cert-hosts", "127.0.0.1", "--webhook-configurations", "e2e-managed",
			// A minute of validity renewed with 45 s left: a renewal within the test.
			"--cert-validity", "60s", "--cert-renew-before", "45s", "--cert-check-interval", "2s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
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
	client := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := client.Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })

	secret := func() []byte {
		s, err := e.cluster.Client.CoreV1().Secrets(ns).Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
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
		// A replica patches the caBundle as it starts, before it listens: wait for the listener.
		var conn *tls.Conn
		var err error
		for wait := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool}); err == nil || time.Now().After(wait) {
				break
			}
		}
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
		pod, err := e.cluster.Client.CoreV1().Pods("s11").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
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

// TestCARotation: the CA of `serve --manage-certs` is changed with `rego-injector certs
// --rotate-ca` while pods are created without pause through three replicas, each its own webhook
// entry with failurePolicy Fail, so every pod needs all three: two managed replicas (one checks the
// Secret every second, the other every 4 s) and one serving the Secret's certificate from files that
// the test replaces only well after the switch, as a kubelet that is late refreshing a mounted
// Secret would. The new CA joins the caBundle before it signs, the old one stays after, and no
// admission fails.
func TestCARotation(t *testing.T) {
	e := need(t)
	const ns = "e2e-rotation-system"
	namespace(t, ns, nil)
	namespace(t, "s12", map[string]string{"istio-injection": "enabled", "e2e-rotation": "true"})
	// Long enough that no serving certificate is renewed during the test: only the CA changes.
	validity := []string{"--cert-validity", "2h", "--cert-renew-before", "10m"}
	var addrs []string
	var procs []*process
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for i, interval := range []string{"1s", "4s"} {
		p, err := start(t.TempDir(), fmt.Sprintf("rotation-%d", i), cleanEnv(), e.injector.bin, append([]string{"serve",
			"--listen", addrs[i], "--kubeconfig", e.cluster.Kubeconfig, "--injector-namespace", ns,
			"--manage-certs", "--cert-hosts", "127.0.0.1", "--webhook-configurations", "e2e-rotation",
			"--cert-check-interval", interval}, validity...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		procs = append(procs, p)
	}
	secrets := e.cluster.Client.CoreV1().Secrets(ns)
	var secret *corev1.Secret
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := secrets.Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
		if err == nil {
			secret = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the managed replicas did not write the Secret within 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	oldCA := parseCert(t, secret.Data["ca.crt"])
	// The third replica serves the Secret's certificate from files, as a mounted Secret.
	dir := t.TempDir()
	files := &issued{certPEM: secret.Data["tls.crt"], keyPEM: secret.Data["tls.key"]}
	if err := files.write(dir, "tls"); err != nil {
		t.Fatal(err)
	}
	p, err := start(dir, "rotation-2", cleanEnv(), e.injector.bin, "serve", "--listen", addrs[2],
		"--kubeconfig", e.cluster.Kubeconfig, "--injector-namespace", ns,
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	procs = append(procs, p)
	tails := func() string {
		var b strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", p.Name, p.Tail(5))
		}
		return b.String()
	}

	// One entry per replica, all Fail: a pod is admitted only if the apiserver trusts all three.
	mwc, _, err := shippedWebhooks("https://"+addrs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	mwc.Name = "e2e-rotation"
	template := mwc.Webhooks[0]
	template.NamespaceSelector.MatchExpressions = append(template.NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: "e2e-rotation", Operator: metav1.LabelSelectorOpExists})
	template.FailurePolicy = ptr(admissionregistrationv1.Fail)
	mwc.Webhooks = nil
	for i, addr := range addrs {
		w := *template.DeepCopy()
		w.Name = fmt.Sprintf("replica-%d.rotation.rego-injector.io", i)
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr("https://" + addr + "/inject")}
		mwc.Webhooks = append(mwc.Webhooks, w)
	}
	configs := e.cluster.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := configs.Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = configs.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	caBundles := func() [][]byte {
		cfg, err := configs.Get(t.Context(), mwc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, w := range cfg.Webhooks {
			out = append(out, w.ClientConfig.CABundle)
		}
		return out
	}
	create := func() error {
		pod, err := e.cluster.Client.CoreV1().Pods("s12").Create(t.Context(), simplePod("p", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && !hasContainer(pod, "istio-proxy") {
			err = errors.New("admitted without istio-proxy")
		}
		return err
	}
	// The apiserver picks the configuration up asynchronously (and a replica patches the caBundle
	// within its check interval): wait until a pod goes through all three.
	deadline = time.Now().Add(60 * time.Second)
	for create() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no pod admitted through the three replicas within 60 s: %v%s", create(), tails())
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Pods without pause from two clients, bounded: at most 2,000 creates.
	const most = 2000
	var ok, failed, total atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for total.Add(1) <= most {
				select {
				case <-stop:
					return
				default:
				}
				if err := create(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	time.Sleep(time.Second)

	out, err := exec.CommandContext(t.Context(), e.injector.bin, "certs", "--kubeconfig", e.cluster.Kubeconfig,
		"--service-namespace", ns, "--hosts", "127.0.0.1", "--webhook-configurations", "e2e-rotation",
		"--validity", "2h", "--renew-before", "10m", "--rotate-ca", "--ca-lead", "3s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "new CA in the caBundle") {
		t.Fatalf("rego-injector certs --rotate-ca: %v\n%s", err, out)
	}
	staged, err := secrets.Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newCA := parseCert(t, staged.Data["ca-next.crt"])
	for i, b := range caBundles() {
		if !holds(b, oldCA) || !holds(b, newCA) {
			t.Fatalf("webhook %d: the caBundle does not hold both CAs once the new one is staged", i)
		}
	}
	t.Logf("new CA staged: %s", strings.TrimSpace(string(out)))

	// Replica 0 switches to a certificate of the new CA 3 s on; replica 1 within 4 s of it;
	// replica 2 keeps the old one.
	signer := func(addr string) string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer conn.Close()
		switch leaf := conn.ConnectionState().PeerCertificates[0]; {
		case leaf.CheckSignatureFrom(newCA) == nil:
			return "new"
		case leaf.CheckSignatureFrom(oldCA) == nil:
			return "old"
		}
		return "unknown"
	}
	waitFor := func(what string, limit time.Duration, done func() bool) time.Duration {
		start := time.Now()
		for !done() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	took := waitFor("replica 0 serves a certificate of the new CA", 20*time.Second, func() bool { return signer(addrs[0]) == "new" })
	t.Logf("replica 0 switched %s after staging; replicas 1 and 2 serve the %s and %s CA's certificate", took.Round(100*time.Millisecond), signer(addrs[1]), signer(addrs[2]))
	waitFor("replica 1 serves a certificate of the new CA", 15*time.Second, func() bool { return signer(addrs[1]) == "new" })
	switched, err := secrets.Get(t.Context(), "rego-injector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !parseCert(t, switched.Data["ca.crt"]).Equal(newCA) || len(switched.Data["ca-next.crt"]) > 0 {
		t.Fatal("the Secret does not have the new CA as current")
	}
	for i, b := range caBundles() {
		if !holds(b, oldCA) || !holds(b, newCA) {
			t.Fatalf("webhook %d: the caBundle does not keep the old CA after the switch", i)
		}
	}
	// Replica 2 still serves the old CA's certificate: admissions go on for a while like that.
	time.Sleep(2 * time.Second)
	if got := signer(addrs[2]); got != "old" {
		t.Fatalf("replica 2 serves the %s CA's certificate before its files were replaced", got)
	}
	// The kubelet catches up: replica 2 reloads the Secret's new certificate.
	files = &issued{certPEM: switched.Data["tls.crt"], keyPEM: switched.Data["tls.key"]}
	if err := files.write(dir, "tls"); err != nil {
		t.Fatal(err)
	}
	waitFor("replica 2 serves a certificate of the new CA", 20*time.Second, func() bool { return signer(addrs[2]) == "new" })
	time.Sleep(time.Second)
	halt()
	if failed.Load() > 0 || ok.Load() < 100 {
		t.Fatalf("%d admissions succeeded, %d failed across the change of CA (first error: %v)%s", ok.Load(), failed.Load(), firstErr.Load(), tails())
	}
	t.Logf("%d admissions through three replicas across the change of CA, none failed", ok.Load())
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// holds reports whether the PEM bundle holds the certificate c.
func holds(bundle []byte, c *x509.Certificate) bool {
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		if bytes.Equal(block.Bytes, c.Raw) {
			return true
		}
	}
	return false
}
