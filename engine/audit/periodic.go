package audit

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/rego-injector/rego-injector/engine/metrics"
)

// Periodically audits every pod of the cluster each interval until ctx ends, exporting the counts
// as metrics and logging the findings' summary. The first audit runs after one interval, when the
// informers and the bundle have settled.
func Periodically(ctx context.Context, every time.Duration, client kubernetes.Interface, inj Decider, m *metrics.Metrics, log *slog.Logger) {
	states := make([]string, len(States))
	for i, s := range States {
		states[i] = string(s)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		r, err := RunCluster(ctx, inj, client, "")
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("audit failed; the counts of the last audit stay", "err", err)
			}
			continue
		}
		total := 0
		for _, n := range r.Pods {
			total += n
		}
		counts := map[string]int{}
		for s, n := range r.Pods {
			counts[string(s)] = n
		}
		m.Audit(counts, states)
		log.Info("audit", "revision", r.Revision, "pods", total, "missing", r.Pods[StateMissing], "unexpected", r.Pods[StateUnexpected],
			"outdated", r.Pods[StateOutdated], "variant", r.Pods[StateVariant], "errors", r.Pods[StateError], "duration_ms", time.Since(start).Milliseconds())
	}
}
