// Package controlplane runs a real Kubernetes control plane on 127.0.0.1 for the end-to-end tests
// and the fault run: etcd, kube-apiserver and, when asked, kube-controller-manager, from the
// binaries test/tools/cluster-binaries.sh builds, with a PKI of its own and a static admin token.
// There is no scheduler and no kubelet: pods stay Pending.
package controlplane

import (
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

// AdminToken is the bearer token of the control plane's administrator (group system:masters).
const AdminToken = "admin-token"

// Options shapes a control plane.
type Options struct {
	// ControllerManager also runs kube-controller-manager, so that Deployments get ReplicaSets
	// and pods, and namespaces' service accounts get tokens.
	ControllerManager bool
	// ClientTimeout bounds each request of Client; 0: no bound.
	ClientTimeout time.Duration
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Bin and Dir are where the binaries are and where the PKI, kubeconfig and logs are written.
	Bin, Dir string
	// URL is the apiserver's; Kubeconfig the path of the administrator's kubeconfig.
	URL, Kubeconfig string
	// CA signed the apiserver's serving certificate; tests may sign their own with it.
	CA     *certs.Authority
	Client kubernetes.Interface
	// APIServer is the kube-apiserver process; Procs every process, in the order started.
	APIServer *Process
	Procs     []*Process
}

// Start starts the control plane from the binaries in bin, writing into dir, and waits until the
// apiserver is ready. On error everything started is stopped.
func Start(ctx context.Context, bin, dir string, opts Options) (c *ControlPlane, err error) {
	names := []string{"etcd", "kube-apiserver"}
	if opts.ControllerManager {
		names = append(names, "kube-controller-manager")
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("control-plane binaries: %w", err)
		}
	}
	c = &ControlPlane{Bin: bin, Dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.writePKI(); err != nil {
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
	env := CleanEnv()
	etcd, err := StartProcess(dir, "etcd", env, filepath.Join(bin, "etcd"),
		"--name", "cp", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "cp="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	c.Procs = append(c.Procs, etcd)

	c.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if c.APIServer, err = StartProcess(dir, "kube-apiserver", env, filepath.Join(bin, "kube-apiserver"),
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
		"--v=1"); err != nil {
		return nil, err
	}
	c.Procs = append(c.Procs, c.APIServer)

	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cp
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: cp
  context: {cluster: cp, user: admin, namespace: default}
current-context: cp
`, c.URL, filepath.Join(dir, "ca.crt"), AdminToken)
	if err := os.WriteFile(c.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}

	if opts.ControllerManager {
		kcm, err := StartProcess(dir, "kube-controller-manager", env, filepath.Join(bin, "kube-controller-manager"),
			"--kubeconfig", c.Kubeconfig,
			"--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
			"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports[3]),
			"--leader-elect=false",
			"--service-account-private-key-file", filepath.Join(dir, "sa.key"),
			"--root-ca-file", filepath.Join(dir, "ca.crt"),
			"--use-service-account-credentials=false",
			"--v=1")
		if err != nil {
			return nil, err
		}
		c.Procs = append(c.Procs, kcm)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 100, 200, opts.ClientTimeout
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// writePKI writes the CA, the apiserver's serving pair, the service-account key pair and the token
// file into c.Dir.
func (c *ControlPlane) writePKI() error {
	var err error
	if c.CA, err = certs.NewAuthority("control plane CA", 24*time.Hour); err != nil {
		return err
	}
	serving, err := c.CA.Issue([]string{"localhost", "kubernetes.default.svc", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"ca.crt":        c.CA.CertPEM,
		"ca.key":        c.CA.KeyPEM,
		"apiserver.crt": serving.CertPEM,
		"apiserver.key": serving.KeyPEM,
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":    []byte(AdminToken + `,admin,admin-uid,"system:masters"` + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(c.Dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *ControlPlane) waitReady(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AddCert(c.CA.Cert)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.APIServer.exited:
			return fmt.Errorf("kube-apiserver exited:\n%s", c.APIServer.Tail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after 90 s:\n%s", c.APIServer.Tail(30))
}

// Stop stops every process, the last started first.
func (c *ControlPlane) Stop() {
	for i := len(c.Procs) - 1; i >= 0; i-- {
		c.Procs[i].Stop()
	}
}

// Process is a child started in its own process group, logging to a file, killed if its parent
// dies.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	// Log is the path of its output.
	Log    string
	exited chan struct{}
}

// StartProcess starts bin with args and env, writing its output to dir/name.log.
func StartProcess(dir, name string, env []string, bin string, args ...string) (*Process, error) {
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
	p := &Process{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// Stop ends the process group: continued first in case it is paused, then SIGTERM, and SIGKILL
// after 10 s; it returns once the process has exited.
func (p *Process) Stop() {
	pid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Pause stops the process (SIGSTOP): its sockets stay open and nothing answers.
func (p *Process) Pause() error { return syscall.Kill(p.Cmd.Process.Pid, syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() error { return syscall.Kill(p.Cmd.Process.Pid, syscall.SIGCONT) }

// Tail returns the last n lines of the process's output, for failure messages.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CleanEnv is the environment without the variables a child would read as configuration: etcd
// reads every ETCD_* variable as a flag, client tools read KUBECONFIG, and rego-injector's tests
// are configured by REGO_INJECTOR_* ones.
func CleanEnv() []string {
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

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}
