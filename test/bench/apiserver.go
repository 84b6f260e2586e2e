package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rego-injector/rego-injector/engine/certs"
)

// controlPlane is etcd and kube-apiserver on 127.0.0.1, built by test/tools/cluster-binaries.sh,
// with a CA of its own and a static admin token: enough for serve's namespace informer.
type controlPlane struct {
	kubeconfig string
	client     kubernetes.Interface
	etcd       *exec.Cmd
	apiserver  *exec.Cmd
}

const benchToken = "bench-admin-token"

// startControlPlane starts etcd and kube-apiserver from the binaries in bin, logging into dir, and
// waits until the apiserver is ready.
func startControlPlane(ctx context.Context, bin, dir string) (cp *controlPlane, err error) {
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("control-plane binaries: %w", err)
		}
	}
	cp = &controlPlane{}
	defer func() {
		if err != nil {
			cp.stop()
		}
	}()
	ca, err := certs.NewAuthority("bench cluster CA", time.Hour)
	if err != nil {
		return nil, err
	}
	serving, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.crt":        ca.CertPEM,
		"apiserver.crt": serving.CertPEM,
		"apiserver.key": serving.KeyPEM,
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":    []byte(benchToken + `,admin,admin-uid,"system:masters"` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	addrs := make([]string, 3)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	client, peer, secure := "http://"+addrs[0], "http://"+addrs[1], addrs[2]
	if cp.etcd, err = startLogged(dir, "etcd", filepath.Join(bin, "etcd"),
		"--name", "bench", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer, "--log-level", "warn"); err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(secure, ":")
	if cp.apiserver, err = startLogged(dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", client,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", port,
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--v=0"); err != nil {
		return nil, err
	}
	cp.kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://%s", certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
`, secure, filepath.Join(dir, "ca.crt"), benchToken)
	if err := os.WriteFile(cp.kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if err := apiserverReady(ctx, cp.apiserver, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, "https://"+secure+"/readyz"); err != nil {
		return nil, fmt.Errorf("%w (log in %s)", err, filepath.Join(dir, "kube-apiserver.log"))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	if cp.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return cp, nil
}

// startLogged starts bin in its own process group, writing its output to dir/name.log; it is
// killed if the harness dies.
func startLogged(dir, name, bin string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// etcd reads ETCD_* variables as flags, client tools KUBECONFIG: the child gets neither.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return cmd, nil
}

func apiserverReady(ctx context.Context, apiserver *exec.Cmd, cfg *tls.Config, url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+benchToken)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if syscall.Kill(apiserver.Process.Pid, 0) != nil {
			return errors.New("kube-apiserver exited")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("kube-apiserver not ready after 90 s")
}

// createNamespace creates a namespace with labels.
func (cp *controlPlane) createNamespace(ctx context.Context, name string, labels map[string]string) error {
	_, err := cp.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	return err
}

// pause stops the apiserver process (SIGSTOP): its sockets stay open and nothing answers.
func (cp *controlPlane) pause() error { return syscall.Kill(cp.apiserver.Process.Pid, syscall.SIGSTOP) }

// resume continues it (SIGCONT).
func (cp *controlPlane) resume() error {
	return syscall.Kill(cp.apiserver.Process.Pid, syscall.SIGCONT)
}

// stop ends kube-apiserver then etcd, continuing the apiserver first in case it is stopped.
func (cp *controlPlane) stop() {
	for _, cmd := range []*exec.Cmd{cp.apiserver, cp.etcd} {
		if cmd == nil || cmd.Process == nil {
			continue
		}
		pid := cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil; {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
