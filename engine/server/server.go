package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/metrics"
)

// Readiness reports whether the server can answer admissions, with details for /readyz.
type Readiness func() (ready bool, details map[string]any)

// Config is what Serve needs. Handlers, Ready and Log are required.
type Config struct {
	// Mutating and Validating answer POST /inject and POST /validate.
	Mutating, Validating admission.Handler
	// Ready backs GET /readyz.
	Ready Readiness
	// Metrics backs GET /metrics; nil serves none.
	Metrics *metrics.Metrics
	// Certificates supplies the serving certificate on every handshake.
	Certificates func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ShutdownGrace bounds how long in-flight requests may take to finish on shutdown.
	ShutdownGrace time.Duration
	// ShutdownDelay is how long the server keeps answering, with /readyz failing, after it is told
	// to stop and before it stops accepting connections: time for the endpoints to drop this
	// replica, so that the apiserver sends no admission to a closed port. Every answer in that time
	// closes its connection, so that the apiserver's kept-alive connections are gone, not cut, by
	// the end of it.
	ShutdownDelay time.Duration
	// MaxInFlightBytes bounds the bytes of the review bodies being answered at once, counted by
	// their Content-Length (MaxBodyBytes when unknown): a review past it is refused at once with
	// HTTP 429, before its body is read, so that an overload is shed instead of growing the heap.
	// One review is always admitted. Zero means no bound.
	MaxInFlightBytes int64
	// MaxConcurrent bounds the admissions answered at once, once read (0: twice GOMAXPROCS).
	// Answering is CPU work: past a few per core, more at once only lengthen the scheduler's
	// queue, behind which the handshakes and reads of every other request wait too. An admission
	// past the bound waits for its turn for at most MaxQueueWait (0: 1s), then is refused with
	// HTTP 429.
	MaxConcurrent int
	MaxQueueWait  time.Duration
	Log           *slog.Logger
}

// Handler returns the routes: /inject, /validate, /healthz, /readyz and /metrics.
func Handler(cfg Config) http.Handler {
	return handler(cfg, new(atomic.Bool))
}

// handler is Handler with a flag that, once set, makes /readyz fail: the server is stopping.
func handler(cfg Config, stopping *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	b := &budget{limit: cfg.MaxInFlightBytes}
	g := newGate(cfg.MaxConcurrent, cfg.MaxQueueWait)
	mux.Handle("/inject", b.bound("inject", cfg, admission.Serve(g.handler("inject", cfg, cfg.Mutating), cfg.Log)))
	mux.Handle("/validate", b.bound("validate", cfg, admission.Serve(g.handler("validate", cfg, cfg.Validating), cfg.Log)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, details := cfg.Ready()
		if details == nil {
			details = map[string]any{}
		}
		if stopping.Load() {
			ready, details["stopping"] = false, true
		}
		details["ready"] = ready
		w.Header().Set("Content-Type", "application/json")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(details)
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			// Tell the client not to send on this connection again (HTTP/1.1 closes it after the
			// response, HTTP/2 sends GOAWAY): a request it wrote on a kept-alive connection just
			// as the connection was closed would be lost, and the apiserver does not retry an
			// admission.
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, r)
	})
}

// Serve serves Handler(cfg) over TLS on ln until ctx is done, then shuts down gracefully: /readyz
// fails at once, admissions are still answered for ShutdownDelay, then no new connection is
// accepted and in-flight requests get ShutdownGrace to finish.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	stopping := new(atomic.Bool)
	srv := &http.Server{
		Handler: handler(cfg, stopping),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: cfg.Certificates,
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	cfg.Log.Info("serving", "address", "https://"+ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopping.Store(true)
	if cfg.ShutdownDelay > 0 {
		cfg.Log.Info("stopping: readiness fails, still answering", "for", cfg.ShutdownDelay)
		time.Sleep(cfg.ShutdownDelay)
	}
	grace := cfg.ShutdownGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	cfg.Log.Info("shutting down", "grace", grace)
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// budget counts the bytes of the review bodies being answered against a limit.
type budget struct {
	mu          sync.Mutex
	used, limit int64
}

// take reserves n bytes, and reports whether they fit; a request is always let in when none is
// in flight, however large.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used > 0 && b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// bound sheds the reviews of endpoint that do not fit the budget with HTTP 429: the apiserver
// takes it as a failed call and applies the webhook's failurePolicy, at once rather than after a
// timeout. Without a limit it returns h.
func (b *budget) bound(endpoint string, cfg Config, h http.Handler) http.Handler {
	if b.limit <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.ContentLength
		if n < 0 || n > admission.MaxBodyBytes {
			n = admission.MaxBodyBytes
		}
		if !b.take(n) {
			cfg.Metrics.Shed(endpoint)
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("overloaded: the admission reviews being answered already hold %d bytes, the limit (--max-inflight-bytes); retry", b.limit), http.StatusTooManyRequests)
			return
		}
		cfg.Metrics.InFlight(n)
		defer func() {
			b.give(n)
			cfg.Metrics.InFlight(-n)
		}()
		h.ServeHTTP(w, r)
	})
}

// gate lets a few admissions be answered at once; the others wait for a turn, for a while.
type gate struct {
	turns chan struct{}
	wait  time.Duration
}

func newGate(n int, wait time.Duration) *gate {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	if wait <= 0 {
		wait = time.Second
	}
	return &gate{turns: make(chan struct{}, n), wait: wait}
}

// handler answers a review of endpoint with h when a turn is free within the wait (the review is
// read by then), and sheds it with HTTP 429 otherwise.
func (g *gate) handler(endpoint string, cfg Config, h admission.Handler) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req *admission.Request) *admission.Response {
		select {
		case g.turns <- struct{}{}:
		default:
			t := time.NewTimer(g.wait)
			select {
			case g.turns <- struct{}{}:
				t.Stop()
			case <-t.C:
				cfg.Metrics.Shed(endpoint)
				return admission.Errored(http.StatusTooManyRequests, fmt.Errorf("overloaded: %d admissions are being answered and this one waited %s for its turn; retry", cap(g.turns), g.wait))
			case <-ctx.Done():
				t.Stop()
				return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("the client went away while the admission waited for its turn: %w", ctx.Err()))
			}
		}
		defer func() { <-g.turns }()
		return h.Handle(ctx, req)
	})
}
