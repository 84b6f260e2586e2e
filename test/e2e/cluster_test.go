package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rego-injector/rego-injector/engine/certs"
)

// cluster is a real control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager,
// with a generated PKI and a static admin token. No scheduler or kubelet: pods stay Pending.
type cluster struct {
	dir        string
	bin        string
	ca         *authority
	url        string
	kubeconfig string
	client     kubernetes.Interface
	procs      []*process
}

// process is a child started in its own process group, logging to a file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func (p *process) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// tail returns the last lines of the process's log, for failure messages.
func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func start(dir, name string, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return &process{name: name, cmd: cmd, log: logPath}, nil
}

// cleanEnv is the environment without variables a child would read as configuration (etcd reads
// every ETCD_* variable as a flag; client tools read KUBECONFIG).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "REGO_INJECTOR_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const adminToken = "e2e-admin-token"

// startCluster starts etcd, kube-apiserver and kube-controller-manager from bin and waits until the
// apiserver is ready. On error everything started is stopped.
func startCluster(ctx context.Context, bin, dir string) (c *cluster, err error) {
	c = &cluster{dir: dir, bin: bin}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if c.ca, err = newAuthority("e2e cluster CA"); err != nil {
		return nil, err
	}
	if err := c.ca.write(dir, "ca"); err != nil {
		return nil, err
	}
	serving, err := c.ca.issue([]string{"localhost", "kubernetes.default.svc"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := serving.write(dir, "apiserver"); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, _ := x509.MarshalECPrivateKey(saKey)
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(adminToken+`,admin,admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}

	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	env := cleanEnv()
	etcd, err := start(dir, "etcd", env, filepath.Join(bin, "etcd"),
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, etcd)

	c.url = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	apiserver, err := start(dir, "kube-apiserver", env, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", clientURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports[2]),
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--allow-privileged=true",
		"--v=1")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, apiserver)

	c.kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: default}
current-context: e2e
`, c.url, filepath.Join(dir, "ca.crt"), adminToken)
	if err := os.WriteFile(c.kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, apiserver); err != nil {
		return nil, err
	}

	kcm, err := start(dir, "kube-controller-manager", env, filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports[3]),
		"--leader-elect=false",
		"--service-account-private-key-file", filepath.Join(dir, "sa.key"),
		"--root-ca-file", filepath.Join(dir, "ca.crt"),
		"--use-service-account-credentials=false",
		"--v=1")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, kcm)

	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cluster) waitReady(ctx context.Context, apiserver *process) error {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if apiserver.cmd.ProcessState != nil {
			return fmt.Errorf("kube-apiserver exited:\n%s", apiserver.tail(30))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after 90 s:\n%s", apiserver.tail(30))
}

// stop stops every process, the last started first.
func (c *cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
}

// kubectl runs the cluster's kubectl with the admin kubeconfig.
func (c *cluster) kubectl(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// authority is a CA of the test's own, for the apiserver's and the webhooks' serving certificates.
type authority struct{ *certs.Authority }

func newAuthority(name string) (*authority, error) {
	a, err := certs.NewAuthority(name, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &authority{a}, nil
}

// issued is a serving certificate and its key, PEM-encoded.
type issued struct{ certPEM, keyPEM []byte }

// issue signs a serving certificate for the names and addresses.
func (a *authority) issue(dns []string, ips []net.IP) (*issued, error) {
	hosts := append([]string(nil), dns...)
	for _, ip := range ips {
		hosts = append(hosts, ip.String())
	}
	s, err := a.Issue(hosts, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &issued{certPEM: s.CertPEM, keyPEM: s.KeyPEM}, nil
}

// write stores the CA's certificate and key as dir/name.crt and dir/name.key.
func (a *authority) write(dir, name string) error {
	return (&issued{certPEM: a.CertPEM, keyPEM: a.KeyPEM}).write(dir, name)
}

// write stores the certificate and key as dir/name.crt and dir/name.key, each replaced atomically.
func (i *issued) write(dir, name string) error {
	for ext, data := range map[string][]byte{".crt": i.certPEM, ".key": i.keyPEM} {
		tmp := filepath.Join(dir, "."+name+ext+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name+ext)); err != nil {
			return err
		}
	}
	return nil
}
