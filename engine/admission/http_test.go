package admission_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/admission"
)

const review = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"kind":"Pod"}}}`

func serve(t *testing.T, h admission.Handler, method, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, "/inject", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	admission.Serve(h, slog.New(slog.DiscardHandler)).ServeHTTP(rec, req)
	return rec
}

func TestPanicAndErrorsAreHTTPErrors(t *testing.T) {
	h := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { panic("boom") })
	rec := serve(t, h, http.MethodPost, "application/json", review)
	// An HTTP error, so that the apiserver applies the webhook's failurePolicy.
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	ok := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { return admission.Denied("no") })
	rec = serve(t, ok, http.MethodPost, "application/json", review)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("a denial is an answer, not an error: %d %s", rec.Code, rec.Body)
	}
	if out.Response.Allowed || out.Response.UID != "u-1" || out.Response.Result.Code != http.StatusForbidden {
		t.Fatalf("unexpected response %s", rec.Body)
	}
}

func TestMethodAndContentType(t *testing.T) {
	ok := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { return admission.Allowed() })
	if rec := serve(t, ok, http.MethodGet, "application/json", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", rec.Code)
	}
	if rec := serve(t, ok, http.MethodPost, "application/json; charset=utf-8", review); rec.Code != http.StatusOK {
		t.Errorf("JSON with charset: status %d", rec.Code)
	}
	if rec := serve(t, ok, http.MethodPost, "application/yaml", review); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("YAML: status %d", rec.Code)
	}
}

// TestOversizedBodyOverTheWire: a body past the limit is answered 413 with a message naming the
// limit, and the client reads that answer, not a reset connection: over HTTP/1.1 from a client that
// writes its whole request before it reads (as many do), plain and over TLS, and from Go's client
// over HTTP/1.1 and HTTP/2 (TLS, as engine/server serves).
func TestOversizedBodyOverTheWire(t *testing.T) {
	ok := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { return admission.Allowed() })
	h := admission.Serve(ok, slog.New(slog.DiscardHandler))
	sizes := []int{admission.MaxBodyBytes + 1, 12 << 20}
	wantMessage := fmt.Sprintf("exceeds the limit of %d bytes", admission.MaxBodyBytes)
	for name, tc := range map[string]struct {
		tls, http2, writeAllFirst bool
	}{
		"whole request first, http/1.1":     {writeAllFirst: true},
		"whole request first, http/1.1+tls": {tls: true, writeAllFirst: true},
		"go client, http/1.1+tls":           {tls: true},
		"go client, http/2+tls":             {tls: true, http2: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(h)
			// A 64 KiB receive buffer: a body the server stops reading backs up into the client
			// within milliseconds, as on a real network, not into megabytes of loopback buffer.
			srv.Listener = smallBuffers{srv.Listener}
			srv.EnableHTTP2 = tc.http2
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			for _, size := range sizes {
				body := bytes.Repeat([]byte{' '}, size)
				var (
					resp *http.Response
					err  error
				)
				if tc.writeAllFirst {
					resp, err = writeAllThenRead(srv, body)
				} else {
					resp, err = goClient(t, srv, body)
				}
				if err != nil {
					t.Fatalf("%d bytes: no answer, the connection was dropped: %v", size, err)
				}
				msg, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%d bytes: read the answer: %v", size, err)
				}
				if want := map[bool]int{false: 1, true: 2}[tc.http2]; resp.ProtoMajor != want {
					t.Errorf("%d bytes: answered over HTTP/%d, want HTTP/%d", size, resp.ProtoMajor, want)
				}
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), wantMessage) {
					t.Fatalf("%d bytes: status %d %q, want 413 with a message containing %q", size, resp.StatusCode, msg, wantMessage)
				}
			}
		})
	}
}

// smallBuffers gives every accepted connection a 64 KiB receive buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(64 << 10)
	}
	return c, err
}

// writeAllThenRead sends one HTTP/1.1 request on a connection of its own, writing all of the body
// before reading the answer.
func writeAllThenRead(srv *httptest.Server, body []byte) (*http.Response, error) {
	addr := srv.Listener.Addr().String()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = raw.(*net.TCPConn).SetWriteBuffer(64 << 10)
	conn := raw
	if srv.TLS != nil {
		pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		conn = tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	head := fmt.Sprintf("POST /inject HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	if _, err = io.WriteString(conn, head); err != nil {
		return nil, fmt.Errorf("write the header: %w", err)
	}
	if _, err = conn.Write(body); err != nil {
		return nil, fmt.Errorf("write the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{resp.Body, conn}
	return resp, nil
}

func goClient(t *testing.T, srv *httptest.Server, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/inject", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return srv.Client().Do(req)
}

func TestDeniedAndPatched(t *testing.T) {
	d := admission.Denied("no", "careful")
	if d.Allowed || d.Result.Code != http.StatusForbidden || d.Result.Message != "no" || d.Warnings[0] != "careful" {
		t.Errorf("Denied: %+v", d)
	}
	if p := admission.Patched(nil); p.PatchType != nil || !p.Allowed {
		t.Errorf("an empty patch must not set a patch type: %+v", p)
	}
}

// FuzzDecode: no body makes Decode panic, and whatever it accepts has a request with a UID.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(review))
	f.Add([]byte(strings.Replace(review, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":null}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := admission.Decode(body)
		if err != nil {
			return
		}
		if r.Request == nil || r.Request.UID == "" {
			t.Fatalf("accepted a review without a request UID: %s", body)
		}
	})
}
