package injector

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Mutating returns the handler of the mutating webhook.
func (i *Injector) Mutating() admission.Handler { return admission.HandlerFunc(i.mutate) }

// Validating returns the handler of the validating webhook.
func (i *Injector) Validating() admission.Handler { return admission.HandlerFunc(i.validate) }

// isPod reports whether the request is about a pod itself (not a subresource such as status).
func isPod(req *admission.Request) bool {
	return req.Kind.Group == "" && req.Kind.Kind == "Pod" && req.SubResource == ""
}

// bound applies the admission deadline to ctx.
func (i *Injector) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if i.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, i.timeout)
}

func (i *Injector) mutate(ctx context.Context, req *admission.Request) *admission.Response {
	start := time.Now()
	ctx, cancel := i.bound(ctx)
	defer cancel()
	meta := workload.MetadataOf(req.Object.Raw)
	log := i.log.With("endpoint", "inject", "uid", req.UID, "namespace", req.Namespace, "name", podName(req, meta), "operation", req.Operation)
	if !isPod(req) || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		i.metrics.Admission("inject", metrics.ResultIgnored, "", "", time.Since(start))
		return admission.Allowed()
	}
	res, err := i.injectMemoised(ctx, req)
	took := time.Since(start)
	i.logDecision("injector/mutate/decision", req, res.Revision, res.Decision, err, took)
	i.compareShadow(Pod{Raw: req.Object.Raw, Request: req}, res, err)
	if err != nil {
		i.metrics.Admission("inject", metrics.ResultError, "", "", took)
		log.Error("admission failed", "revision", res.Revision, "err", err, "duration_ms", ms(took))
		return admission.Errored(http.StatusInternalServerError, err)
	}
	d := res.Decision
	if req.DryRun == nil || !*req.DryRun {
		i.events.Record(events.Outcome{Namespace: req.Namespace, Pod: meta, Revision: res.Revision, Decision: d, Injected: res.Patch != nil})
	}
	if len(d.Deny) > 0 {
		i.metrics.Admission("inject", metrics.ResultDenied, "", d.Code, took)
		log.Info("admission", "decision", "deny", "revision", res.Revision, "deny", d.Deny, "duration_ms", ms(took))
		return admission.Denied(strings.Join(d.Deny, "; "), d.Warnings...)
	}
	if res.Patch == nil {
		i.metrics.Admission("inject", metrics.ResultSkipped, d.Variant, skipReason(d, res.Current != nil), took)
		log.Info("admission", "decision", "skip", "revision", res.Revision, "reasons", d.Reasons, "duration_ms", ms(took))
		warnings := d.Warnings
		if !d.Inject && res.Current == nil { // tell the client why; an up-to-date pod needs no explaining
			warnings = append(slices.Clip(warnings), prefixed("not injected: ", d.Reasons)...)
		}
		return admission.Allowed(warnings...)
	}
	i.metrics.Admission("inject", metrics.ResultInjected, d.Variant, "", took)
	log.Info("admission", "decision", "inject", "variant", d.Variant, "revision", res.Revision, "reasons", d.Reasons, "duration_ms", ms(took))
	resp := admission.Patched(res.Patch, d.Warnings...)
	resp.AuditAnnotations = map[string]string{"variant": d.Variant, "revision": res.Revision}
	return resp
}

func (i *Injector) validate(ctx context.Context, req *admission.Request) *admission.Response {
	start := time.Now()
	ctx, cancel := i.bound(ctx)
	defer cancel()
	log := i.log.With("endpoint", "validate", "uid", req.UID, "namespace", req.Namespace, "name", podName(req, workload.MetadataOf(req.Object.Raw)), "operation", req.Operation)
	if !isPod(req) || len(req.Object.Raw) == 0 {
		i.metrics.Admission("validate", metrics.ResultIgnored, "", "", time.Since(start))
		return admission.Allowed()
	}
	v, rev, err := i.validateMemoised(ctx, req)
	took := time.Since(start)
	i.logDecision("injector/validate", req, rev, verdictResult(v), err, took)
	if err != nil {
		i.metrics.Admission("validate", metrics.ResultError, "", "", took)
		log.Error("admission failed", "revision", rev, "err", err, "duration_ms", ms(took))
		return admission.Errored(http.StatusInternalServerError, err)
	}
	for _, violation := range v.Violations {
		i.metrics.Violation(violation.Rule, violation.Mode)
	}
	if len(v.DryRun) > 0 {
		log.Info("dry-run violations", "revision", rev, "dryrun", v.DryRun)
	}
	if len(v.Deny) > 0 {
		i.metrics.Admission("validate", metrics.ResultDenied, "", "", took)
		log.Info("admission", "decision", "deny", "revision", rev, "deny", v.Deny, "duration_ms", ms(took))
		return admission.Denied(strings.Join(v.Deny, "; "), v.Warn...)
	}
	i.metrics.Admission("validate", metrics.ResultAllowed, "", "", took)
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
