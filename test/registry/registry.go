// Package registry publishes OPA bundles to OCI registries, and runs the CNCF distribution registry
// on 127.0.0.1 for the tests that need a real one.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Env names the environment variable that holds the path of the registry binary
// (test/tools/registry-binary.sh builds it; make test sets it).
const Env = "REGO_INJECTOR_REGISTRY_BIN"

// Options configures a registry.
type Options struct {
	// HTPasswd, when set, is an htpasswd line (user:bcrypt-hash): the registry then answers only
	// that user, with basic authentication.
	HTPasswd string
}

// Server is a registry process listening on 127.0.0.1, storing on disk so that it can be stopped
// and started again with its content.
type Server struct {
	// Addr is host:port of the registry.
	Addr string

	bin, dir string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
}

// Start runs the registry binary bin with its storage and configuration under dir, on a free port
// of 127.0.0.1, and waits until it answers.
func Start(ctx context.Context, bin, dir string, opts Options) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	auth := ""
	if opts.HTPasswd != "" {
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, []byte(opts.HTPasswd+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: rego-injector-test\n    path: %s\n", file)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "storage"), addr, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s := &Server{Addr: addr, bin: bin, dir: dir}
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts the registry again after Stop, on the same address and storage.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("registry: already running")
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	cmd := exec.Command(s.bin, "serve", filepath.Join(s.dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = log, log
	// No traces: the registry would otherwise export them to an OTLP collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("registry: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.log = cmd, exited, log
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil // 200, or 401 when authentication is on
		}
		select {
		case <-exited:
			s.cmd = nil
			log.Close()
			return fmt.Errorf("registry: exited at start: %s", s.Log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("registry: not answering on %s after 15 s: %s", s.Addr, s.Log())
		}
	}
}

// Stop ends the registry process and waits for it; its storage stays.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.log.Close()
	s.cmd = nil
}

// Log is what the registry wrote, its last 4 KiB.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "registry.log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return strings.TrimSpace(string(b))
}

// ForTest runs the registry for t, which is skipped when Env is not set, and stops it when t ends
// (logging what it wrote when t failed). The OCI downloaders' stores go under TMPDIR, which t
// points at a directory of its own: a test may end before a stopped downloader removed its store.
func ForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := os.Getenv(Env)
	if bin == "" {
		t.Skipf("%s is not set: make test (or make go-test) builds the OCI registry this test runs. Skipping.", Env)
	}
	t.Setenv("TMPDIR", t.TempDir())
	s, err := Start(t.Context(), bin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("registry log:\n%s", s.Log())
		}
	})
	return s
}
