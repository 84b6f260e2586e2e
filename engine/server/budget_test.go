package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/metrics"
)

// TestBudgetShedsWhatDoesNotFit: while the bodies being answered hold the limit, a review that
// does not fit is refused at once with 429 and Retry-After; one that fits, and any review once the
// others are answered, goes through; a review larger than the limit goes through alone.
func TestBudgetShedsWhatDoesNotFit(t *testing.T) {
	m := metrics.New()
	b := &budget{limit: 100}
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	h := b.bound("inject", Config{Metrics: m}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if r.Header.Get("X-Hold") != "" {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	}))
	send := func(size int, hold bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/inject", strings.NewReader(strings.Repeat("x", size)))
		if hold {
			r.Header.Set("X-Hold", "1")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	done := make(chan int)
	go func() { done <- send(70, true).Code }()
	<-entered
	if w := send(40, false); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "--max-inflight-bytes") {
		t.Fatalf("a review past the limit: %d %q", w.Code, w.Body)
	}
	if w := send(30, false); w.Code != http.StatusOK {
		t.Fatalf("a review that fits: %d", w.Code)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the held review: %d", code)
	}
	if w := send(500, false); w.Code != http.StatusOK {
		t.Fatalf("a review larger than the limit, alone: %d", w.Code)
	}
	if b.used != 0 {
		t.Errorf("%d bytes still counted in flight", b.used)
	}
	if got := testCounter(t, m, "rego_injector_admissions_shed_total"); got != 1 {
		t.Errorf("shed counter %v, want 1", got)
	}
}

func testCounter(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
