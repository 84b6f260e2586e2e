package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/server"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// start serves the embedded default bundle over TLS on 127.0.0.1 with every namespace enabled, and
// returns its base URL and a client that trusts its CA. template, when set, replaces the sidecar
// template. The server stops when the test ends.
func start(t *testing.T, template string) (string, *http.Client) {
	t.Helper()
	base, c, stop := startWith(t, template, nil)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return base, c
}

// startWith is start with the server configuration adjusted by configure, and stopped by the
// function it returns, which waits for Serve to return.
func startWith(t *testing.T, template string, configure func(*server.Config)) (string, *http.Client, func() error) {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	if template != "" {
		b.Data["injector"].(map[string]any)["templates"].(map[string]any)["sidecar"] = template
	}
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	m := metrics.New()
	inj := injector.New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}}, injector.WithMetrics(m), injector.WithLogger(log))
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	m.Activation("live", p.Revision(), 0)
	hooks := webhook.New(inj, webhook.WithMetrics(m), webhook.WithLogger(log))
	ss, err := server.NewSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Mutating: hooks.Mutating(), Validating: hooks.Validating(), Metrics: m,
		Certificates: ss.GetCertificate, Log: log,
		Ready: func() (bool, map[string]any) { return inj.Ready(), map[string]any{"revision": inj.Revision()} },
	}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, ln, cfg) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ss.CAPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("the server did not stop")
		}
	}
	return "https://" + ln.Addr().String(), client, stop
}

const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"team-a","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`

func review(apiVersion, kind, resource, object string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"AdmissionReview","request":{"uid":"e911857d-c318-11e8-bbad-025000000001",` +
		`"kind":{"group":"","version":"v1","kind":"` + kind + `"},"resource":{"group":"","version":"v1","resource":"` + resource + `"},` +
		`"namespace":"team-a","operation":"CREATE","userInfo":{"username":"alice"},"object":` + object + `}}`
}

func post(t *testing.T, c *http.Client, url, contentType, body string) (int, []byte) {
	t.Helper()
	resp, err := c.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func decodeReview(t *testing.T, body []byte) (string, *admissionv1.AdmissionResponse) {
	t.Helper()
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode response %s: %v", body, err)
	}
	if r.Response == nil {
		t.Fatalf("no response in %s", body)
	}
	return r.APIVersion, r.Response
}

func TestInjectBothReviewVersions(t *testing.T) {
	base, c := start(t, "")
	for _, version := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
		t.Run(version, func(t *testing.T) {
			code, body := post(t, c, base+"/inject", "application/json", review(version, "Pod", "pods", pod))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			gotVersion, resp := decodeReview(t, body)
			if gotVersion != version {
				t.Errorf("answered in %s, asked in %s", gotVersion, version)
			}
			if !resp.Allowed || resp.UID != "e911857d-c318-11e8-bbad-025000000001" {
				t.Fatalf("allowed %v uid %q: %s", resp.Allowed, resp.UID, body)
			}
			if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("no JSON patch: %s", body)
			}
			if !bytes.Contains(resp.Patch, []byte(`"name":"istio-proxy"`)) {
				t.Errorf("patch does not add the proxy: %s", resp.Patch)
			}
		})
	}
}

func TestNonPodPassesUntouched(t *testing.T) {
	base, c := start(t, "")
	svc := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`
	code, body := post(t, c, base+"/inject", "application/json", review("admission.k8s.io/v1", "Service", "services", svc))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	_, resp := decodeReview(t, body)
	if !resp.Allowed || resp.Patch != nil || len(resp.Warnings) != 0 {
		t.Fatalf("a Service was not passed through untouched: %s", body)
	}
}

func TestHTTPErrors(t *testing.T) {
	base, c := start(t, "")
	huge := review("admission.k8s.io/v1", "Pod", "pods", `{"kind":"Pod","metadata":{"annotations":{"a":"`+strings.Repeat("x", admission.MaxBodyBytes)+`"}}}`)
	for name, tc := range map[string]struct {
		contentType, body string
		want              int
	}{
		"malformed":          {"application/json", `{"apiVersion":`, http.StatusBadRequest},
		"not a review":       {"application/json", `{"apiVersion":"v1","kind":"Pod"}`, http.StatusBadRequest},
		"no request":         {"application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest},
		"wrong content type": {"text/plain", review("admission.k8s.io/v1", "Pod", "pods", pod), http.StatusUnsupportedMediaType},
		"oversized":          {"application/json", huge, http.StatusRequestEntityTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(t, c, base+"/inject", tc.contentType, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}
}

func TestTemplatePanicBecomesError(t *testing.T) {
	// Fine for the self-test's pod, a panic for the pod named web.
	base, c := start(t, "spec:\n  containers:\n  - name: x\n    image: y{{ if eq .Pod.Name \"web\" }}{{ div 1 0 }}{{ end }}\n")
	for range 2 { // and the server keeps answering
		code, body := post(t, c, base+"/inject", "application/json", review("admission.k8s.io/v1", "Pod", "pods", pod))
		// An HTTP error, so that the apiserver applies the webhook's failurePolicy.
		if code != http.StatusInternalServerError || !strings.Contains(string(body), "divide by zero") {
			t.Fatalf("want a 500 saying what failed: %d %s", code, body)
		}
	}
}

func TestValidate(t *testing.T) {
	base, c := start(t, "")
	// An app container running as the proxy's UID next to the proxy is denied.
	bad := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"team-a"},"spec":{"containers":[{"name":"app","image":"nginx","securityContext":{"runAsUser":1337}},{"name":"istio-proxy","image":"proxy"}]}}`
	code, body := post(t, c, base+"/validate", "application/json", review("admission.k8s.io/v1", "Pod", "pods", bad))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	_, resp := decodeReview(t, body)
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, "1337") {
		t.Fatalf("want a 403 denial naming UID 1337: %s", body)
	}
	// The legacy opt-out annotation is allowed with a warning.
	warned := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"team-a","annotations":{"sidecar.istio.io/inject":"false"}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`
	_, body = post(t, c, base+"/validate", "application/json", review("admission.k8s.io/v1", "Pod", "pods", warned))
	_, resp = decodeReview(t, body)
	if !resp.Allowed || len(resp.Warnings) == 0 {
		t.Fatalf("want allowed with warnings: %s", body)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	base, c := start(t, "")
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"revision":"default-1"`, "/metrics": "rego_injector_bundle_info"} {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: status %d, body lacks %q: %s", path, resp.StatusCode, want, body)
		}
	}
}

// TestGracefulShutdown: told to stop, the server fails /readyz at once but keeps answering
// admissions for the shutdown delay, each on a connection it then closes, then returns.
func TestGracefulShutdown(t *testing.T) {
	base, c, stop := startWith(t, "", func(cfg *server.Config) { cfg.ShutdownDelay = 500 * time.Millisecond })
	get := func(path string) (int, bool) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Close
	}
	if code, closing := get("/readyz"); code != http.StatusOK || closing {
		t.Fatalf("before shutdown: %d, connection closed %v", code, closing)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	// Each answer in the delay closes its connection, so that no kept-alive connection is cut
	// under a request at the end of it.
	if code, closing := get("/readyz"); code != http.StatusServiceUnavailable || !closing {
		t.Errorf("/readyz during shutdown: %d, connection closed %v; want 503 and Connection: close", code, closing)
	}
	if code, body := post(t, c, base+"/inject", "application/json", review("admission.k8s.io/v1", "Pod", "pods", pod)); code != http.StatusOK {
		t.Errorf("admission refused during the shutdown delay: %d %s", code, body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
