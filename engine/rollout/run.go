package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// ErrNotReady is returned, wrapped with the workload's name, when a restarted workload does not
// become ready within Options.Timeout, or when its controller gives up on the rollout.
var ErrNotReady = errors.New("workload not ready")

// Options shape Run. The zero value is a dry run, one workload at a time.
type Options struct {
	// MaxUnavailable is how many workloads restart at once; 0 means 1.
	MaxUnavailable int
	// Timeout bounds each workload's wait to become ready after its restart; 0 means 10 minutes.
	Timeout time.Duration
	// Confirm restarts the workloads. Without it Run is a dry run: it reads the workloads, prints
	// what it would do and changes nothing.
	Confirm bool
	// Out receives the progress lines; nil discards them.
	Out io.Writer
	// Log receives a line per poll at debug and a line per restart; nil discards them.
	Log *slog.Logger
	// Poll is how often a restarting workload is read; 0 means 2 seconds.
	Poll time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxUnavailable < 1 {
		o.MaxUnavailable = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	return o
}

// Result is what Run did.
type Result struct {
	// Restarted lists the workloads restarted and ready, in the order they became ready.
	Restarted []Outcome
	// Skipped lists what was left alone: the plan's Manual and Unsafe targets, and workloads a
	// restart would not roll (paused, OnDelete, partitioned) or that are gone since the audit.
	Skipped []Outcome
	// Failed lists the workloads restarted that did not become ready, or could not be restarted.
	Failed []Outcome
	// Pending lists the workloads not reached: those after a failure or a cancellation, and in a
	// dry run every workload that would be restarted.
	Pending []Target
}

// Outcome is what became of one target.
type Outcome struct {
	Target Target
	// Why says why a target was skipped or failed.
	Why string
	// Took is the time from its restart until it was ready, or until Run gave up on it.
	Took time.Duration
}

// Run restarts plan's workloads as `kubectl rollout restart` does, at most opts.MaxUnavailable at
// once, and waits for each rollout to complete and its pods to be available before starting the
// next. It stops starting workloads at the first that fails or when ctx ends, waits for those in
// flight, and returns ErrNotReady naming the failed one, or ctx's error. Without opts.Confirm it
// changes nothing. The plan's Manual and Unsafe targets are never touched.
func Run(ctx context.Context, client kubernetes.Interface, plan Plan, opts Options) (Result, error) {
	r := &runner{client: client, opts: opts.withDefaults()}
	for _, t := range append(append([]Target{}, plan.Manual...), plan.Unsafe...) {
		r.printf("leaving %s alone: %s", t.describe(), t.Why)
		r.res.Skipped = append(r.res.Skipped, Outcome{Target: t, Why: t.Why})
	}
	if len(plan.Restart) == 0 {
		r.printf("nothing to restart")
		return r.res, nil
	}
	if !r.opts.Confirm {
		err := r.dryRun(ctx, plan.Restart)
		r.printf("dry run: nothing was changed")
		return r.res, err
	}

	slots := make(chan struct{}, r.opts.MaxUnavailable)
	var wg sync.WaitGroup
	next := 0
start:
	for ; next < len(plan.Restart); next++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break start
		}
		if r.stopped() || ctx.Err() != nil {
			<-slots
			break
		}
		t := plan.Restart[next]
		wg.Go(func() {
			defer func() { <-slots }()
			r.restart(ctx, t)
		})
	}
	wg.Wait()
	r.res.Pending = append(r.res.Pending, plan.Restart[next:]...)
	if r.err == nil && ctx.Err() != nil {
		r.err = fmt.Errorf("rollout interrupted: %w", ctx.Err())
	}
	r.printf("%d restarted, %d skipped, %d failed, %d not started", len(r.res.Restarted), len(r.res.Skipped), len(r.res.Failed), len(r.res.Pending))
	if r.err != nil && len(r.res.Pending) > 0 {
		names := make([]string, len(r.res.Pending))
		for i, t := range r.res.Pending {
			names[i] = t.String()
		}
		r.printf("not started: %s", strings.Join(names, ", "))
	}
	return r.res, r.err
}

// runner is one Run: its results so far and its first error.
type runner struct {
	client kubernetes.Interface
	opts   Options

	outMu sync.Mutex // serialises the lines written to opts.Out
	mu    sync.Mutex // guards res and err
	res   Result
	err   error
}

func (r *runner) printf(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.opts.Out, format+"\n", args...)
}

func (r *runner) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

// dryRun reads each target and says whether it would be restarted or skipped.
func (r *runner) dryRun(ctx context.Context, targets []Target) error {
	for _, t := range targets {
		p, err := read(ctx, r.client, t)
		switch {
		case apierrors.IsNotFound(err):
			r.skip(t, "not found: it is gone since the audit")
		case err != nil:
			return fmt.Errorf("read %s: %w", t, err)
		case p.skip != "":
			r.skip(t, p.skip)
		default:
			r.printf("would restart %s", t.describe())
			r.res.Pending = append(r.res.Pending, t)
		}
	}
	return nil
}

func (r *runner) skip(t Target, why string) {
	r.printf("skipping %s: %s", t.describe(), why)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Skipped = append(r.res.Skipped, Outcome{Target: t, Why: why})
}

// fail records t as failed; the first failure stops Run.
func (r *runner) fail(t Target, took time.Duration, why string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Failed = append(r.res.Failed, Outcome{Target: t, Why: why, Took: took})
	if r.err == nil {
		r.err = err
	}
}

// restart restarts t, unless a restart would not roll it, and waits until it is ready.
func (r *runner) restart(ctx context.Context, t Target) {
	log := r.opts.Log.With("kind", t.Owner.Kind, "namespace", t.Namespace, "name", t.Owner.Name)
	p, err := read(ctx, r.client, t)
	switch {
	case apierrors.IsNotFound(err):
		r.skip(t, "not found: it is gone since the audit")
		return
	case err != nil:
		r.fail(t, 0, err.Error(), fmt.Errorf("read %s: %w", t, err))
		return
	case p.skip != "":
		r.skip(t, p.skip)
		return
	}
	r.printf("restarting %s", t.describe())
	log.Info("restarting", "pods", len(t.Pods))
	started := time.Now()
	if err := restartWorkload(ctx, r.client, t, started.Format(time.RFC3339)); err != nil {
		r.fail(t, 0, err.Error(), err)
		return
	}

	wait, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	last, lastErr := progress{waiting: "not read yet"}, error(nil)
	shown := ""
	for {
		p, err := read(wait, r.client, t)
		switch {
		case err == nil:
			last, lastErr = p, nil
		case apierrors.IsNotFound(err):
			r.printf("%s was deleted during its restart", t)
			r.fail(t, time.Since(started), "deleted during its restart", fmt.Errorf("%s: deleted during its restart: %w", t, ErrNotReady))
			return
		case wait.Err() == nil:
			// A failed read is retried until the timeout: the apiserver may be restarting.
			log.Warn("reading the workload failed; retrying", "err", err)
			lastErr = err
		}
		if err == nil {
			log.Debug("rollout progress", "done", p.done, "waiting", p.waiting)
			if p.done {
				took := time.Since(started)
				r.printf("%s ready in %s", t, took.Round(100*time.Millisecond))
				log.Info("ready", "took", took)
				r.mu.Lock()
				r.res.Restarted = append(r.res.Restarted, Outcome{Target: t, Took: took})
				r.mu.Unlock()
				return
			}
			if p.stuck != "" {
				r.notReady(ctx, t, started, p, p.stuck)
				return
			}
			if p.waiting != shown {
				r.printf("%s: %s", t, p.waiting)
				shown = p.waiting
			}
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				why := fmt.Sprintf("interrupted before it was ready (%s)", last.waiting)
				r.printf("%s: %s", t, why)
				r.fail(t, time.Since(started), why, fmt.Errorf("%s: %s: %w", t, why, ctx.Err()))
				return
			}
			why := fmt.Sprintf("not ready after %s: %s", r.opts.Timeout, last.waiting)
			if lastErr != nil {
				why += fmt.Sprintf(" (last read failed: %v)", lastErr)
			}
			r.notReady(ctx, t, started, last, why)
			return
		case <-tick.C:
		}
	}
}

// notReady reports t as failed: why, its conditions and its pods that are not ready.
func (r *runner) notReady(ctx context.Context, t Target, started time.Time, p progress, why string) {
	lines := []string{fmt.Sprintf("%s %s", t, why)}
	if len(p.conditions) == 0 {
		lines = append(lines, "  no conditions")
	}
	for _, c := range p.conditions {
		lines = append(lines, "  condition "+c)
	}
	if p.selector != nil && ctx.Err() == nil {
		pods, err := unreadyPods(ctx, r.client, t.Namespace, p.selector)
		if err != nil {
			lines = append(lines, "  its pods: "+err.Error())
		}
		for _, pod := range pods {
			lines = append(lines, "  pod "+pod)
		}
	}
	r.printf("%s", strings.Join(lines, "\n"))
	r.opts.Log.Warn("workload not ready", "kind", t.Owner.Kind, "namespace", t.Namespace, "name", t.Owner.Name, "why", why)
	r.fail(t, time.Since(started), why, fmt.Errorf("%s %s: %w", t, why, ErrNotReady))
}
