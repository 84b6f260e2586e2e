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
	Log           *slog.Logger
}

// Handler returns the routes: /inject, /validate, /healthz, /readyz and /metrics.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/inject", admission.Serve(cfg.Mutating, cfg.Log))
	mux.Handle("/validate", admission.Serve(cfg.Validating, cfg.Log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, details := cfg.Ready()
		if details == nil {
			details = map[string]any{}
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
	return mux
}

// Serve serves Handler(cfg) over TLS on ln until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	srv := &http.Server{
		Handler: Handler(cfg),
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
