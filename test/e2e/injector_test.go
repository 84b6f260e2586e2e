package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// injectorProcess is the rego-injector binary serving with certificate files the test controls.
type injectorProcess struct {
	bin  string
	proc *process
	url  string
	dir  string
	ca   *authority
}

// startInjector runs `rego-injector serve` with a serving certificate for 127.0.0.1 and the cluster's
// namespaces, and waits until it is ready.
func startInjector(ctx context.Context, c *cluster, bin, dir string) (*injectorProcess, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The default bundle, with enforcement modes for the namespaces of TestEnforcementModes.
	bundle := filepath.Join(dir, "bundle")
	err := writeBundle(bundle, "default-1", func(config map[string]any) {
		config["enforcement"].(map[string]any)["namespaces"] = map[string]any{
			"modes-warn":   map[string]any{"proxy_uid": "warn"},
			"modes-dryrun": map[string]any{"proxy_uid": "dryrun"},
		}
	})
	if err != nil {
		return nil, err
	}
	return startServe(c, bin, dir, "--bundle", bundle, "--audit-interval", "1s")
}

// startServe runs `rego-injector serve` with args, a serving certificate for 127.0.0.1 and the
// cluster's namespaces, writing into dir, and waits until it is ready.
func startServe(c *cluster, bin, dir string, args ...string) (*injectorProcess, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := newAuthority("e2e webhook CA")
	if err != nil {
		return nil, err
	}
	serving, err := ca.issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := serving.write(dir, "tls"); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := start(dir, "rego-injector", cleanEnv(), bin, append([]string{"serve",
		"--listen", addr,
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"),
		"--kubeconfig", c.Kubeconfig,
		"--injector-namespace", "rego-injector-system",
		"--log-level", "info"}, args...)...)
	if err != nil {
		return nil, err
	}
	inj := &injectorProcess{bin: bin, proc: p, url: "https://" + addr, dir: dir, ca: ca}
	client := inj.httpClient()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(inj.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return inj, nil
			}
		}
		if p.Exited() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Stop()
	return nil, fmt.Errorf("injector not ready:\n%s", p.Tail(20))
}

func (i *injectorProcess) stop() { i.proc.Stop() }

func (i *injectorProcess) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(i.ca.Cert)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// shippedWebhooks reads deploy/base/webhooks.yaml, what an operator installs, pointed at url and
// trusting ca instead of the in-cluster Service.
func shippedWebhooks(url string, ca []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "base", "webhooks.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, err
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			err = yaml.UnmarshalStrict(doc, &mwc)
		case "ValidatingWebhookConfiguration":
			err = yaml.UnmarshalStrict(doc, &vwc)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if len(mwc.Webhooks) == 0 || len(vwc.Webhooks) == 0 {
		return nil, nil, fmt.Errorf("deploy/base/webhooks.yaml lacks a mutating or a validating webhook")
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = pointAt(mwc.Webhooks[i].ClientConfig, url, ca)
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = pointAt(vwc.Webhooks[i].ClientConfig, url, ca)
	}
	return &mwc, &vwc, nil
}

func pointAt(cc admissionregistrationv1.WebhookClientConfig, base string, ca []byte) admissionregistrationv1.WebhookClientConfig {
	path := ""
	if cc.Service != nil && cc.Service.Path != nil {
		path = *cc.Service.Path
	}
	u := base + path
	return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: ca}
}

// registerWebhooks installs the shipped webhook configurations and waits until the apiserver calls
// them: it picks configurations up asynchronously, so a dry-run probe polls until a pod comes back
// injected.
func registerWebhooks(ctx context.Context, c *cluster, inj *injectorProcess) error {
	mwc, vwc, err := shippedWebhooks(inj.url, inj.ca.CertPEM)
	if err != nil {
		return err
	}
	// Renamed, so that the shipped objects can still be applied beside them (TestDeployManifestsApply).
	mwc.Name, vwc.Name = mwc.Name+"-e2e", vwc.Name+"-e2e"
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := createNamespace(ctx, c, "e2e-probe", map[string]string{"istio-injection": "enabled"}); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pod, err := c.Client.CoreV1().Pods("e2e-probe").Create(ctx, simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && hasContainer(pod, "istio-proxy") {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("the apiserver did not call the webhook within 60 s")
}

// createNamespace creates a namespace and waits for its default ServiceAccount, without which the
// apiserver refuses pods.
func createNamespace(ctx context.Context, c *cluster, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s: no default ServiceAccount after 60 s", name)
}

func simplePod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func hasContainer(pod *corev1.Pod, name string) bool {
	return countContainers(pod, name) > 0
}

func countContainers(pod *corev1.Pod, name string) int {
	n := 0
	for _, c := range append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...) {
		if c.Name == name {
			n++
		}
	}
	return n
}
