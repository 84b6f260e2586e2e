package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/test/controlplane"
)

// cluster is a real control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager.
type cluster struct{ *controlplane.ControlPlane }

// process is a child of the test: a control-plane binary or an injector.
type process = controlplane.Process

// start starts a child of the test in its own process group, logging to dir/name.log.
var start = controlplane.StartProcess

// cleanEnv is the environment a child gets: none of the variables it would read as configuration.
var cleanEnv = controlplane.CleanEnv

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCluster starts etcd, kube-apiserver and kube-controller-manager from bin and waits until the
// apiserver is ready. On error everything started is stopped.
func startCluster(ctx context.Context, bin, dir string) (*cluster, error) {
	cp, err := controlplane.Start(ctx, bin, dir, controlplane.Options{ControllerManager: true})
	if err != nil {
		return nil, err
	}
	return &cluster{cp}, nil
}

// kubectl runs the cluster's kubectl with the admin kubeconfig.
func (c *cluster) kubectl(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
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
