package webhook

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// WithShadow evaluates every mutating admission with shadow too, off the request path, and logs
// and counts where its answer differs. The shadow's answer is never applied. The live injector
// must not memoise (injector.WithMemo), for a memoised answer carries no pod to compare.
func WithShadow(shadow *injector.Injector) Option {
	return func(w *Webhooks) {
		w.shadow = shadow
		w.shadowSlots = make(chan struct{}, 4)
	}
}

// compareShadow evaluates the pod with the shadow bundle in the background and reports how its
// answer differs from the live one. When the shadow is busy the comparison is skipped rather than
// queued, so that shadowing never holds admissions back.
func (w *Webhooks) compareShadow(in injector.Admission, live injector.Result, liveErr error) {
	if w.shadow == nil || w.shadow.Revision() == "" { // no shadow revision active yet
		return
	}
	select {
	case w.shadowSlots <- struct{}{}:
	default:
		w.metrics.ShadowDifference("skipped")
		return
	}
	go func() {
		defer func() { <-w.shadowSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sh, err := w.shadow.Inject(ctx, in)
		kind := shadowDifference(live, liveErr, sh, err)
		if kind == "" {
			return
		}
		w.metrics.ShadowDifference(kind)
		attrs := []any{"uid", in.Request.UID, "namespace", in.Request.Namespace, "name", podName(in.Request, workload.MetadataOf(in.Raw)), "differs", kind,
			"live", map[string]any{"revision": live.Revision, "inject": live.Decision.Inject, "variant": live.Decision.Variant, "reasons": live.Decision.Reasons},
			"shadow", map[string]any{"revision": sh.Revision, "inject": sh.Decision.Inject, "variant": sh.Decision.Variant, "reasons": sh.Decision.Reasons}}
		if err != nil {
			attrs = append(attrs, "shadowError", err.Error())
		}
		w.log.Info("shadow bundle differs", attrs...)
	}()
}

// shadowDifference names the first way the shadow's answer differs from the live one: "error",
// "inject", "variant" or "patch"; "" when they agree. The pods are compared as they are, except
// that a string which is exactly the shadow's revision where the live pod has exactly the live
// revision is no difference, and the status annotations are compared as the documents they hold:
// a new revision that injects the same sidecar is no difference, while a revision named "2" does
// not excuse a port, an image tag or an environment value that happens to contain a 2.
func shadowDifference(live injector.Result, liveErr error, sh injector.Result, shErr error) string {
	switch {
	case (liveErr == nil) != (shErr == nil):
		return "error"
	case liveErr != nil:
		return ""
	case live.Decision.Inject != sh.Decision.Inject:
		return "inject"
	case live.Decision.Variant != sh.Decision.Variant:
		return "variant"
	case !sameInjection(withStatusDecoded(live.Pod), withStatusDecoded(sh.Pod), live.Revision, sh.Revision):
		return "patch"
	}
	return ""
}

// sameInjection reports whether a (injected at revision ra) and b (at rb) are equal, a string
// equal to ra in a standing for one equal to rb in b.
func sameInjection(a, b any, ra, rb string) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameInjection(va, vb, ra, rb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameInjection(a[i], b[i], ra, rb) {
				return false
			}
		}
		return true
	case string:
		b, ok := b.(string)
		return ok && (a == b || (a == ra && b == rb && ra != "" && rb != ""))
	}
	return jsonEqual(a, b)
}

// jsonEqual compares two JSON scalars (numbers, booleans, null).
func jsonEqual(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

// withStatusDecoded is pod with its status annotation's JSON decoded in place, so that it is
// compared as a document; pod itself is not changed.
func withStatusDecoded(pod map[string]any) any {
	if pod == nil {
		return nil
	}
	meta, _ := pod["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	raw, ok := ann[inject.StatusAnnotation].(string)
	if !ok {
		return pod
	}
	var status any
	if json.Unmarshal([]byte(raw), &status) != nil {
		return pod
	}
	ann = maps.Clone(ann)
	ann[inject.StatusAnnotation] = status
	meta = maps.Clone(meta)
	meta["annotations"] = ann
	view := maps.Clone(pod)
	view["metadata"] = meta
	return view
}
