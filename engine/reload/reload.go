// Package reload keeps the injector on the newest good revision of its bundles: it watches the
// bundle sources, compiles and activates each new revision off the request path, and keeps the
// last good revision when a new one is refused.
package reload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// Activator takes a compiled revision into service, or refuses it and keeps its current one.
type Activator interface {
	Activate(*policy.Policy) error
}

// Options configures a Reloader.
type Options struct {
	// Name labels this reloader's logs and metrics: "live" or "shadow".
	Name string
	// Sources are the bundles, compiled together into one revision.
	Sources []policy.Source
	// Interval is how often local sources are checked for changes.
	Interval time.Duration
	// PollMin and PollMax bound the jittered delay between downloads of remote sources.
	PollMin, PollMax time.Duration
	// CAFile is the CA of https bundle servers, when not a public one.
	CAFile  string
	Log     *slog.Logger
	Metrics *metrics.Metrics
}

// Status is what /readyz reports of a reloader.
type Status struct {
	Revision    string    `json:"revision"`
	Activations int       `json:"activations"`
	Refusals    int       `json:"refusals"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
}

// Reloader watches sources and activates new revisions on target.
type Reloader struct {
	opts   Options
	target Activator

	mu      sync.Mutex
	bundles []*bundle.Bundle // the last good bundle of each source; nil until one arrives
	hashes  []string         // content hashes of the active bundles
	status  Status
}

// New returns a Reloader; nothing happens until Start.
func New(target Activator, opts Options) *Reloader {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{opts: opts, target: target, bundles: make([]*bundle.Bundle, len(opts.Sources))}
}

// Start reads every local source and activates the revision they make, failing when that is
// impossible: a process does not start on a broken bundle. Remote sources are downloaded in the
// background; until each has delivered a bundle nothing is activated (readiness stays false).
// Sources are then watched until ctx is done.
func (r *Reloader) Start(ctx context.Context) error {
	if len(r.opts.Sources) == 0 {
		return policy.ErrNoBundle
	}
	fingerprints := make([]string, len(r.opts.Sources))
	remote := false
	for i, s := range r.opts.Sources {
		if s.Remote() {
			remote = true
			continue
		}
		fp, err := s.Fingerprint()
		if err != nil {
			return err
		}
		b, err := s.Read(ctx)
		if err != nil {
			return err
		}
		fingerprints[i] = fp
		r.bundles[i] = b
	}
	if !remote {
		if err := r.activate(ctx, r.bundles, true); err != nil {
			return err
		}
	}
	for i, s := range r.opts.Sources {
		if s.Remote() {
			err := s.Download(ctx, r.opts.PollMin, r.opts.PollMax, r.opts.CAFile, func(b *bundle.Bundle, err error) {
				r.update(ctx, i, b, err)
			})
			if err != nil {
				return err
			}
		}
	}
	go r.watchLocal(ctx, fingerprints)
	return nil
}

// watchLocal polls the local sources' fingerprints and reads the ones that changed.
func (r *Reloader) watchLocal(ctx context.Context, fingerprints []string) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, s := range r.opts.Sources {
			if s.Remote() {
				continue
			}
			fp, err := s.Fingerprint()
			if err != nil || fp == fingerprints[i] {
				if err != nil {
					r.refuse(err)
					fingerprints[i] = ""
				}
				continue
			}
			fingerprints[i] = fp
			b, err := s.Read(ctx)
			r.update(ctx, i, b, err)
		}
	}
}

// update takes a new bundle (or the error reading it) for source i and activates the revision it
// makes with the other sources' last good bundles.
func (r *Reloader) update(ctx context.Context, i int, b *bundle.Bundle, err error) {
	if err != nil {
		r.refuse(err)
		return
	}
	r.mu.Lock()
	next := append([]*bundle.Bundle(nil), r.bundles...)
	r.mu.Unlock()
	next[i] = b
	for _, nb := range next {
		if nb == nil { // waiting for another remote source
			r.mu.Lock()
			r.bundles[i] = b
			r.mu.Unlock()
			return
		}
	}
	if r.unchanged(i, b) {
		return // the same bundle again (a server without ETags): nothing to activate
	}
	if err := r.activate(ctx, next, false); err != nil {
		return // refused and recorded; the last good bundles stay
	}
}

// activate compiles bundles into a revision and hands it to the target, recording the outcome. At
// start-up (initial) a failure is the caller's to report: the process does not start.
func (r *Reloader) activate(ctx context.Context, bundles []*bundle.Bundle, initial bool) error {
	start := time.Now()
	p, err := policy.Compile(ctx, bundles...)
	if err == nil {
		err = r.target.Activate(p)
	}
	took := time.Since(start)
	if err != nil {
		if initial {
			r.opts.Metrics.Refusal(r.opts.Name)
		} else {
			r.refuse(err)
		}
		return err
	}
	r.opts.Metrics.Activation(r.opts.Name, p.Revision(), took)
	r.mu.Lock()
	r.bundles = bundles
	r.hashes = make([]string, len(bundles))
	for i, b := range bundles {
		r.hashes[i] = contentHash(b)
	}
	r.status.Revision = p.Revision()
	r.status.Activations++
	r.status.LastSuccess = time.Now()
	r.status.LastError = ""
	r.mu.Unlock()
	r.opts.Log.Info("bundle revision activated", "bundle", r.opts.Name, "revision", p.Revision(), "took_ms", float64(took.Microseconds())/1000)
	// Compiling left megabytes of garbage and the revision replaced is garbage now: hand the memory
	// back at once rather than over minutes (a swap is rare; the collection takes milliseconds).
	debug.FreeOSMemory()
	return nil
}

// unchanged reports whether b has the content of source i's active bundle.
func (r *Reloader) unchanged(i int, b *bundle.Bundle) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return i < len(r.hashes) && r.hashes[i] != "" && r.hashes[i] == contentHash(b)
}

// contentHash summarises a bundle's manifest, modules and data.
func contentHash(b *bundle.Bundle) string {
	h := sha256.New()
	manifest, _ := json.Marshal(b.Manifest)
	h.Write(manifest)
	for _, m := range b.Modules {
		fmt.Fprintf(h, "\x00%s\x00", m.Path)
		h.Write(m.Raw)
	}
	data, _ := json.Marshal(b.Data)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// refuse records a bundle that could not be read, verified, downloaded, compiled or activated.
func (r *Reloader) refuse(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	r.opts.Metrics.Refusal(r.opts.Name)
	r.mu.Lock()
	r.status.Refusals++
	r.status.LastFailure = time.Now()
	r.status.LastError = err.Error()
	revision := r.status.Revision
	r.mu.Unlock()
	r.opts.Log.Error("bundle refused; the active revision keeps serving", "bundle", r.opts.Name, "active", revision, "err", err)
}

// Status reports the active revision and the last activation attempts.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// String names the reloader's sources, for logs.
func (r *Reloader) String() string {
	return fmt.Sprintf("%s bundle from %d source(s)", r.opts.Name, len(r.opts.Sources))
}
