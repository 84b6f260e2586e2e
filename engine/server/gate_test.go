package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/metrics"
)

// TestGateShedsWhatWaitsTooLong: while the admissions answered at once hold every turn, one more
// waits for the wait and is then refused with HTTP 429 and Retry-After (not an AdmissionReview,
// which would be a denial); once a turn is free, reviews are answered again.
func TestGateShedsWhatWaitsTooLong(t *testing.T) {
	m := metrics.New()
	g := newGate(1, 50*time.Millisecond)
	release, entered := make(chan struct{}), make(chan struct{}, 4)
	inner := admission.HandlerFunc(func(_ context.Context, req *admission.Request) *admission.Response {
		entered <- struct{}{}
		if req.Name == "held" {
			<-release
		}
		return admission.Allowed()
	})
	h := admission.Serve(g.handler("inject", Config{Metrics: m}, inner), slog.New(slog.DiscardHandler))
	send := func(name string) *httptest.ResponseRecorder {
		body, err := json.Marshal(map[string]any{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]any{"uid": "u-" + name, "name": name, "operation": "CREATE", "object": map[string]any{"kind": "Pod"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	done := make(chan int)
	go func() { done <- send("held").Code }()
	<-entered
	start := time.Now()
	w := send("next")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "waited 50ms for its turn") {
		t.Fatalf("a review past the turns: %d %q", w.Code, w.Body)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("shed after %s, before the wait was over", waited)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the held review: %d", code)
	}
	if w := send("after"); w.Code != http.StatusOK {
		t.Fatalf("a review once a turn is free: %d %q", w.Code, w.Body)
	}
	if got := testCounter(t, m, "rego_injector_admissions_shed_total"); got != 1 {
		t.Errorf("shed counter %v, want 1", got)
	}
}
