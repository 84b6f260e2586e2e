package observability

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
)

// exportedFamilies runs rego-injector serve, the binary, in two configurations, drives each so that
// its metric families have series, and scrapes /metrics over HTTPS:
//
//   - with a live and a shadow bundle from files: an injection the shadow decides otherwise
//     (shadow differences), a validation that breaks a warn rule (policy violations), and the live
//     file replaced with garbage (a refusal by the reloader);
//   - with the embedded bundle and --max-inflight-bytes=1: the same pod twice (memo lookups, which
//     a shadow bundle turns off), and a review sent while another one's body is still coming
//     (shed with HTTP 429).
//
// A family whose vector has no series is not in a scrape at all, and one family cannot be filled
// here: rego_injector_audit_pods needs a cluster to audit. So the families metrics.New registers,
// the constructor serve calls, count as exported too (Registry.Describe); the scrape alone gives
// types, so a histogram's _bucket, _sum and _count are accepted only when it was seen live.
func exportedFamilies(t *testing.T) families {
	t.Helper()
	bin := injectorBinary(t)
	dir := t.TempDir()
	f := families{live: map[string]string{}, registered: registeredFamilies(t)}

	live := filepath.Join(dir, "live.tar.gz")
	writeBundle(t, live, "obs-1", nil)
	shadow := filepath.Join(dir, "shadow.tar.gz")
	writeBundle(t, shadow, "obs-shadow", func(data map[string]any) error {
		// The shadow ignores the pod's opt-in label, so it does not inject the pod the live bundle injects.
		injector, _ := data["injector"].(map[string]any)
		config, ok := injector["config"].(map[string]any)
		if !ok {
			return fmt.Errorf("no data.injector.config")
		}
		config["pod_keys"] = []any{}
		return nil
	})
	s := startServer(t, bin, filepath.Join(dir, "with-shadow"),
		"--bundle", live, "--shadow-bundle", shadow, "--bundle-check-interval", "100ms")
	s.admit(t, "/inject", review("1", map[string]string{"sidecar.istio.io/inject": "true"}, nil), http.StatusOK)
	s.admit(t, "/validate", review("2", nil, map[string]string{"sidecar.istio.io/inject": "true"}), http.StatusOK)
	if err := os.WriteFile(live, []byte("not a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.scrapeInto(t, f.live, "rego_injector_shadow_differences_total{", "rego_injector_policy_violations_total{",
		`rego_injector_bundle_activations_total{bundle="default",result="refused"}`)

	s = startServer(t, bin, filepath.Join(dir, "shedding"), "--max-inflight-bytes", "1")
	pod := review("3", map[string]string{"sidecar.istio.io/inject": "true"}, nil)
	s.admit(t, "/inject", pod, http.StatusOK)
	s.admit(t, "/inject", pod, http.StatusOK)
	release := s.holdReview(t, 1000)
	s.scrapeInto(t, nil, "rego_injector_admission_inflight_bytes 1000")
	s.admit(t, "/inject", pod, http.StatusTooManyRequests)
	release()
	s.scrapeInto(t, f.live, "rego_injector_memo_lookups_total{", "rego_injector_admissions_shed_total{")

	for name := range f.registered {
		if _, ok := f.live[name]; !ok {
			t.Logf("%s: registered, no series in the scrapes", name)
		}
	}
	return f
}

// injectorBinary is $REGO_INJECTOR_BIN (make build's bin/rego-injector, as the end-to-end tests
// take it), or the command built from this tree.
func injectorBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("REGO_INJECTOR_BIN"); bin != "" {
		return bin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "rego-injector")
	out, err := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, "github.com/rego-injector/rego-injector/cmd/rego-injector").CombinedOutput()
	if err != nil {
		t.Fatalf("build rego-injector: %v\n%s", err, out)
	}
	return bin
}

// registeredFamilies are the names of the families metrics.New registers.
func registeredFamilies(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		metrics.New().Registry.Describe(ch)
		close(ch)
	}()
	// A Desc keeps its name to itself but for its String form.
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no fqName in %s", d)
		}
		out[m[1]] = true
	}
	if !out["rego_injector_admissions_total"] {
		t.Fatalf("rego_injector_admissions_total is not among the registered families %v", out)
	}
	return out
}

// writeBundle writes the embedded default bundle at revision as a tarball, its data changed by edit.
func writeBundle(t *testing.T, path, revision string, edit func(data map[string]any) error) {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = revision
	if edit != nil {
		if err := edit(b.Data); err != nil {
			t.Logf("bundle %s left as the default one: %v", revision, err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// review is an AdmissionReview creating a pod with labels and annotations in a namespace without
// labels (serve runs without a cluster).
func review(uid string, labels, annotations map[string]string) []byte {
	raw, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "00000000-0000-4000-8000-00000000000" + uid,
			"kind":      map[string]string{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]string{"group": "", "version": "v1", "resource": "pods"},
			"namespace": "shop",
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "alice@example.com"},
			"object": map[string]any{
				"apiVersion": "v1",
				"kind":       "Pod",
				"metadata":   map[string]any{"name": "web-" + uid, "namespace": "shop", "labels": labels, "annotations": annotations},
				"spec":       map[string]any{"containers": []any{map[string]any{"name": "web", "image": "nginx:1.27"}}},
			},
		},
	})
	return raw
}

// server is a running rego-injector serve.
type server struct {
	addr   string // host:port
	client *http.Client
	tls    *tls.Config
	log    *lockedBuffer
}

// startServer runs bin serve with args, a self-signed certificate in dir and no cluster, and
// waits until it serves.
func startServer(t *testing.T, bin, dir string, args ...string) *server {
	t.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--self-signed-dir", dir}, args...)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "KUBECONFIG" && k != "KUBERNETES_SERVICE_HOST" && k != "POD_NAMESPACE" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{log: &lockedBuffer{}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			var line struct{ Msg, Address string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				addr <- strings.TrimPrefix(line.Address, "https://")
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("serve exited before serving:\n%s", s.log.String())
		}
		s.addr = a
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not serve within a minute:\n%s", s.log.String())
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	s.tls = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.tls}}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// admit posts an AdmissionReview to path and checks the status code.
func (s *server) admit(t *testing.T, path string, body []byte, want int) {
	t.Helper()
	resp, err := s.client.Post("https://"+s.addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %s, want %d: %s\nserve logged:\n%s", path, resp.Status, want, got, s.log.String())
	}
}

// holdReview starts a review whose body says n bytes and sends none of them, so that it is being
// answered until release.
func (s *server) holdReview(t *testing.T, n int) (release func()) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr, s.tls)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "POST /inject HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.addr, n); err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close() }
}

// scrapeInto reads /metrics until it holds every one of want (series name prefixes), for at most
// 15 seconds, and adds the families of the last scrape, by type, to into. A want not met is
// logged, not failed: the families of the registry count too (exportedFamilies).
func (s *server) scrapeInto(t *testing.T, into map[string]string, want ...string) {
	t.Helper()
	var text string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := s.client.Get("https://" + s.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s %v", resp.Status, err)
		}
		text = string(raw)
		missing := missingSeries(text, want)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("after 15 s, /metrics still has no %v; serve logged:\n%s", missing, s.log.String())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for line := range strings.SplitSeq(text, "\n") {
		if fields := strings.Fields(line); len(fields) == 4 && fields[0] == "#" && fields[1] == "TYPE" && into != nil {
			into[fields[2]] = fields[3]
		}
	}
}

func missingSeries(text string, want []string) []string {
	var missing []string
	for _, w := range want {
		if !strings.Contains("\n"+text, "\n"+w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// lockedBuffer collects the server's log from its reading goroutine for the test's.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
