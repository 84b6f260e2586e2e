package webhook

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Answerer answers admissions: an injector serving one revision, or a revisions.Set that picks
// one per pod.
type Answerer interface {
	Inject(ctx context.Context, a injector.Admission) (injector.Result, error)
	Validate(ctx context.Context, a injector.Admission) (injector.Validation, error)
}

// Webhooks are the mutating and validating webhooks of one injector. They are safe for concurrent use.
type Webhooks struct {
	inj         Answerer
	log         *slog.Logger
	metrics     *metrics.Metrics
	timeout     time.Duration
	decisions   *decisionLog
	shadow      *injector.Injector
	shadowSlots chan struct{}
	events      *events.Recorder
}

// Option configures Webhooks.
type Option func(*Webhooks)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(w *Webhooks) { w.log = l } }

// WithMetrics records admissions and violations in m.
func WithMetrics(m *metrics.Metrics) Option { return func(w *Webhooks) { w.metrics = m } }

// WithTimeout bounds the time one admission may take, policy evaluation included; past it the
// admission fails (and the webhook's failurePolicy applies). Zero means no bound.
func WithTimeout(d time.Duration) Option { return func(w *Webhooks) { w.timeout = d } }

// WithEvents reports every mutating admission that is not a dry run to r as Kubernetes Events.
func WithEvents(r *events.Recorder) Option { return func(w *Webhooks) { w.events = r } }

// New returns the webhooks of inj.
func New(inj Answerer, opts ...Option) *Webhooks {
	w := &Webhooks{inj: inj, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Mutating returns the handler of the mutating webhook.
func (w *Webhooks) Mutating() admission.Handler { return admission.HandlerFunc(w.mutate) }

// Validating returns the handler of the validating webhook.
func (w *Webhooks) Validating() admission.Handler { return admission.HandlerFunc(w.validate) }

// bound applies the admission deadline to ctx.
func (w *Webhooks) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if w.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, w.timeout)
}

func (w *Webhooks) mutate(ctx context.Context, req *admission.Request) *admission.Response {
	start := time.Now()
	ctx, cancel := w.bound(ctx)
	defer cancel()
	meta := workload.MetadataOf(req.Object.Raw)
	log := w.log.With("endpoint", "inject", "uid", req.UID, "namespace", req.Namespace, "name", podName(req, meta), "operation", req.Operation)
	isPod := req.Kind.Group == "" && req.Kind.Kind == "Pod" && req.SubResource == ""
	if !isPod || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		w.metrics.Admission("inject", metrics.ResultIgnored, "", "", "", time.Since(start))
		return admission.Allowed()
	}
	a := injector.Admission{Raw: req.Object.Raw, Request: req}
	res, err := w.inj.Inject(ctx, a)
	took := time.Since(start)
	served := servedBy(res.Revision, res.Selection)
	w.logDecision("injector/mutate/decision", req, served, res.Decision, err, took)
	a.Selection = res.Selection // the shadow answers as the revision chosen for the pod
	w.compareShadow(a, res, err)
	if err != nil {
		w.metrics.Admission("inject", metrics.ResultError, "", "", served.name, took)
		log.Error("admission failed", "revision", res.Revision, "err", err, "duration_ms", ms(took))
		return admission.Errored(http.StatusInternalServerError, err)
	}
	d := res.Decision
	if served.name != "" {
		log = log.With("rev", served.name, "tag", served.tag)
	}
	if req.DryRun == nil || !*req.DryRun {
		w.events.Record(events.Outcome{Namespace: req.Namespace, Pod: meta, Revision: res.Revision, Rev: served.name, Tag: served.tag, Decision: d, Injected: res.Patch != nil})
	}
	if len(d.Deny) > 0 {
		w.metrics.Admission("inject", metrics.ResultDenied, "", d.Code, served.name, took)
		log.Info("admission", "decision", "deny", "revision", res.Revision, "deny", d.Deny, "duration_ms", ms(took))
		return admission.Denied(strings.Join(d.Deny, "; "), d.Warnings...)
	}
	if res.Patch == nil {
		w.metrics.Admission("inject", metrics.ResultSkipped, d.Variant, skipReason(d, res.Current != nil), served.name, took)
		log.Info("admission", "decision", "skip", "revision", res.Revision, "reasons", d.Reasons, "duration_ms", ms(took))
		warnings := d.Warnings
		if !d.Inject && res.Current == nil { // tell the client why; an up-to-date pod needs no explaining
			warnings = append(slices.Clip(warnings), prefixed("not injected: ", d.Reasons)...)
		}
		return admission.Allowed(warnings...)
	}
	w.metrics.Admission("inject", metrics.ResultInjected, d.Variant, "", served.name, took)
	log.Info("admission", "decision", "inject", "variant", d.Variant, "revision", res.Revision, "reasons", d.Reasons, "duration_ms", ms(took))
	resp := admission.Patched(res.Patch, d.Warnings...)
	resp.AuditAnnotations = map[string]string{"variant": d.Variant, "revision": res.Revision}
	if served.name != "" {
		resp.AuditAnnotations["rev"] = served.name
		if served.tag != "" {
			resp.AuditAnnotations["tag"] = served.tag
		}
	}
	return resp
}

// served names what answered an admission: the named revision and tag, when revisions are
// served, and the bundle revision.
type served struct{ name, tag, bundle string }

func servedBy(bundle string, sel *injector.Selection) served {
	s := served{bundle: bundle}
	if sel != nil {
		s.name, s.tag = sel.Name, sel.Tag
	}
	return s
}

// validated reports whether the validating webhook judges req: a pod created or updated, or the
// ephemeral containers `kubectl debug` adds to a running pod (the subresource's object is the
// whole pod, its new containers included).
func validated(req *admission.Request) bool {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || len(req.Object.Raw) == 0 {
		return false
	}
	return req.SubResource == "" || req.SubResource == "ephemeralcontainers"
}

func (w *Webhooks) validate(ctx context.Context, req *admission.Request) *admission.Response {
	start := time.Now()
	ctx, cancel := w.bound(ctx)
	defer cancel()
	log := w.log.With("endpoint", "validate", "uid", req.UID, "namespace", req.Namespace, "name", podName(req, workload.MetadataOf(req.Object.Raw)), "operation", req.Operation, "subresource", req.SubResource)
	if !validated(req) {
		w.metrics.Admission("validate", metrics.ResultIgnored, "", "", "", time.Since(start))
		return admission.Allowed()
	}
	res, err := w.inj.Validate(ctx, injector.Admission{Raw: req.Object.Raw, Request: req})
	took := time.Since(start)
	v, rev, served := res.Verdict, res.Revision, servedBy(res.Revision, res.Selection)
	w.logDecision("injector/validate", req, served, verdictResult(v), err, took)
	if served.name != "" {
		log = log.With("rev", served.name)
	}
	if err != nil {
		w.metrics.Admission("validate", metrics.ResultError, "", "", served.name, took)
		log.Error("admission failed", "revision", rev, "err", err, "duration_ms", ms(took))
		return admission.Errored(http.StatusInternalServerError, err)
	}
	for _, violation := range v.Violations {
		w.metrics.Violation(violation.Rule, violation.Mode)
	}
	if len(v.DryRun) > 0 {
		log.Info("dry-run violations", "revision", rev, "dryrun", v.DryRun)
	}
	if len(v.Deny) > 0 {
		w.metrics.Admission("validate", metrics.ResultDenied, "", "", served.name, took)
		log.Info("admission", "decision", "deny", "revision", rev, "deny", v.Deny, "duration_ms", ms(took))
		return admission.Denied(strings.Join(v.Deny, "; "), v.Warn...)
	}
	w.metrics.Admission("validate", metrics.ResultAllowed, "", "", served.name, took)
	log.Info("admission", "decision", "allow", "revision", rev, "warnings", len(v.Warn), "duration_ms", ms(took))
	return admission.Allowed(v.Warn...)
}

// skipReason labels a pod left unchanged: the decision's code, "up_to_date" for a pod already
// injected at this revision that policy chose to inject again, or "unspecified".
func skipReason(d policy.Decision, current bool) string {
	switch {
	case d.Code != "":
		return d.Code
	case d.Inject && current:
		return "up_to_date"
	}
	return "unspecified"
}

// ms is a duration in milliseconds, for log lines.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func prefixed(prefix string, msgs []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = prefix + m
	}
	return out
}

// podName names the pod for logs: its name, or its generateName prefix followed by "*" while it
// has none (the apiserver names a pod after admission).
func podName(req *admission.Request, meta workload.Metadata) string {
	switch {
	case req.Name != "":
		return req.Name
	case meta.Name != "":
		return meta.Name
	}
	return meta.GenerateName + "*"
}
