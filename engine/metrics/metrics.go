// Package metrics defines the Prometheus metrics the injector exports on /metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the injector's collectors. A nil *Metrics records nothing, so the offline commands
// need none.
type Metrics struct {
	// Registry is what /metrics serves.
	Registry   *prometheus.Registry
	admissions *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	revision   *prometheus.GaugeVec
}

// Result labels of the admissions counter.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultAllowed  = "allowed"
	ResultDenied   = "denied"
	ResultError    = "error"
	ResultIgnored  = "ignored"
)

// New creates the collectors on a fresh registry, with the Go and process collectors beside them.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rego_injector",
			Name:      "admissions_total",
			Help:      "Admission reviews answered, by endpoint (inject, validate), result and variant.",
		}, []string{"endpoint", "result", "variant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rego_injector",
			Name:      "admission_duration_seconds",
			Help:      "Time the handler took to answer one decoded admission review.",
			// 50 µs to ~3.3 s: fine enough to show sub-millisecond work.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 17),
		}, []string{"endpoint"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "rego_injector",
			Name:      "bundle_info",
			Help:      "The active bundle revision (value 1 on the active revision's series).",
		}, []string{"revision"}),
	}
	m.Registry.MustRegister(m.admissions, m.duration, m.revision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Admission records one answered review.
func (m *Metrics) Admission(endpoint, result, variant string, took time.Duration) {
	if m == nil {
		return
	}
	m.admissions.WithLabelValues(endpoint, result, variant).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// Activated records that revision is now the active bundle revision.
func (m *Metrics) Activated(revision string) {
	if m == nil {
		return
	}
	m.revision.Reset()
	m.revision.WithLabelValues(revision).Set(1)
}
