// Package metrics defines the Prometheus metrics the injector exports on /metrics.
package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
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

	activations    *prometheus.CounterVec
	activationTime *prometheus.HistogramVec
	lastActivation *prometheus.GaugeVec
	shadowDiffs    *prometheus.CounterVec
	violations     *prometheus.CounterVec
	memo           *prometheus.CounterVec
	shed           *prometheus.CounterVec
	inFlight       prometheus.Gauge
	auditPods      *prometheus.GaugeVec
	auditLastRun   prometheus.Gauge

	// reasons and rules bound the label values policy chooses: skip codes and rule names.
	reasons, rules *policyLabel
}

// Option configures New.
type Option func(*Metrics)

// WithLogger sets where label values refused by the bounds of policy labels are logged (once per
// value); the default is slog.Default().
func WithLogger(log *slog.Logger) Option {
	return func(m *Metrics) { m.reasons.log, m.rules.log = log, log }
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

// namespace prefixes every metric name.
const namespace = "rego_injector"

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
}

// New creates the collectors on a fresh registry, with the Go and process collectors beside them.
func New(opts ...Option) *Metrics {
	m := &Metrics{
		reasons:  newPolicyLabel("reason", slog.Default()),
		rules:    newPolicyLabel("rule", slog.Default()),
		Registry: prometheus.NewRegistry(),
		admissions: counter("admissions_total",
			"Admission reviews answered, by endpoint (inject, validate), result, variant, for skipped pods the decision's code, and the revision that answered (\"\" when none did).",
			"endpoint", "result", "variant", "reason", "revision"),
		// 50 µs to ~3.3 s: fine enough to show sub-millisecond work.
		duration: histogram("admission_duration_seconds",
			"Time the handler took to answer one decoded admission review.",
			prometheus.ExponentialBuckets(50e-6, 2, 17), "endpoint"),
		revision: gauge("bundle_info",
			"The active bundle revision of each bundle served (value 1 on the active revision's series).",
			"bundle", "revision"),
		activations: counter("bundle_activations_total",
			"Bundle revisions activated, and bundles refused (not read, verified, downloaded, compiled or self-tested), by bundle (the revision served, or shadow) and result (activated, refused).",
			"bundle", "result"),
		activationTime: histogram("bundle_activation_duration_seconds",
			"Time to compile, prepare and check a bundle revision, by bundle.",
			prometheus.ExponentialBuckets(1e-3, 2, 14), "bundle"),
		lastActivation: gauge("bundle_last_activation_timestamp_seconds",
			"Unix time of the last activation attempt, by bundle and result (activated, refused).",
			"bundle", "result"),
		shadowDiffs: counter("shadow_differences_total",
			"Admissions where the shadow bundle decided otherwise than the live one, by what differed (inject, variant, patch, error), and comparisons skipped because the shadow was busy (skipped).",
			"kind"),
		violations: counter("policy_violations_total",
			"Violations the validating policy reported, by rule and enforcement mode (deny, warn, dryrun).",
			"rule", "mode"),
		memo: counter("memo_lookups_total",
			"Admissions looked up in the memo of earlier answers, by endpoint (inject, validate) and result (hit, miss).",
			"endpoint", "result"),
		shed: counter("admissions_shed_total",
			"Admission reviews refused with HTTP 429, by endpoint (inject, validate): before they were read, because the bodies of those being answered already reached --max-inflight-bytes, or after waiting --max-queue-wait for a turn among --max-concurrent-admissions.",
			"endpoint"),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "admission_inflight_bytes",
			Help: "Bytes of the admission review bodies being answered now (counted by their Content-Length)."}),
		auditPods: gauge("audit_pods",
			"Pods by how they stand against the active bundle revision at the last audit (--audit-interval): current, not_injected, missing, unexpected, outdated, variant, error.",
			"state"),
		auditLastRun: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "audit_last_run_timestamp_seconds",
			Help: "Unix time of the last audit that completed."}),
	}
	m.Registry.MustRegister(m.admissions, m.duration, m.revision, m.activations, m.activationTime, m.lastActivation,
		m.shadowDiffs, m.violations, m.memo, m.shed, m.inFlight, m.auditPods, m.auditLastRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range opts {
		o(m)
	}
	return m
}

// ServingCertificate exports, as rego_injector_serving_certificate_expiry_timestamp_seconds, the
// NotAfter of the certificate get would serve now, read at each scrape, so that it follows every
// rotation whatever the certificate's source; no sample while get has none to serve.
func (m *Metrics) ServingCertificate(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&expiryCollector{get: get, desc: prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "serving_certificate_expiry_timestamp_seconds"),
		"Unix time at which the serving certificate expires: alert well before it, in case rotation has stopped.",
		nil, nil)})
}

type expiryCollector struct {
	get  func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	desc *prometheus.Desc
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	cert, err := c.get(&tls.ClientHelloInfo{})
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		return
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return
		}
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
}

// Admission records one answered review; reason is the skip code of a skipped pod, bounded as
// policy labels are (OtherLabelValue).
func (m *Metrics) Admission(endpoint, result, variant, reason, revision string, took time.Duration) {
	if m == nil {
		return
	}
	m.admissions.WithLabelValues(endpoint, result, variant, m.reasons.value(reason), revision).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// Activation records that revision of the named bundle (a revision's name, or "shadow") was activated, and
// how long compiling, preparing and checking it took.
func (m *Metrics) Activation(bundle, revision string, took time.Duration) {
	if m == nil {
		return
	}
	if bundle != "shadow" {
		m.revision.DeletePartialMatch(prometheus.Labels{"bundle": bundle})
		m.revision.WithLabelValues(bundle, revision).Set(1)
	}
	m.activations.WithLabelValues(bundle, "activated").Inc()
	m.activationTime.WithLabelValues(bundle).Observe(took.Seconds())
	m.lastActivation.WithLabelValues(bundle, "activated").SetToCurrentTime()
}

// Refusal records a bundle of the named bundle (a revision's name, or "shadow") refused before it could serve.
func (m *Metrics) Refusal(bundle string) {
	if m == nil {
		return
	}
	m.activations.WithLabelValues(bundle, "refused").Inc()
	m.lastActivation.WithLabelValues(bundle, "refused").SetToCurrentTime()
}

// ShadowDifference counts an admission the shadow bundle decided otherwise; kind says what differed.
func (m *Metrics) ShadowDifference(kind string) {
	if m == nil {
		return
	}
	m.shadowDiffs.WithLabelValues(kind).Inc()
}

// Violation counts one violation of rule, enforced in mode; rule is bounded as policy labels are
// (OtherLabelValue).
func (m *Metrics) Violation(rule, mode string) {
	if m == nil {
		return
	}
	m.violations.WithLabelValues(m.rules.value(rule), mode).Inc()
}

// Memo counts one lookup in the memo of earlier answers at endpoint.
func (m *Metrics) Memo(endpoint string, hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.memo.WithLabelValues(endpoint, result).Inc()
}

// Audit records the pod counts of a completed audit, by state; states not given are zero.
func (m *Metrics) Audit(pods map[string]int, states []string) {
	if m == nil {
		return
	}
	for _, s := range states {
		m.auditPods.WithLabelValues(s).Set(float64(pods[s]))
	}
	m.auditLastRun.SetToCurrentTime()
}

// Shed records one review refused at endpoint because too many bytes were in flight.
func (m *Metrics) Shed(endpoint string) {
	if m == nil {
		return
	}
	m.shed.WithLabelValues(endpoint).Inc()
}

// InFlight adds delta to the bytes of review bodies being answered.
func (m *Metrics) InFlight(delta int64) {
	if m == nil {
		return
	}
	m.inFlight.Add(float64(delta))
}
