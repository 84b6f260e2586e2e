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
	"maps"
	"runtime/debug"
	"slices"
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
	// Name labels this reloader's logs and metrics: the revision's name, or "shadow".
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

// Reloader watches sources and activates new revisions on target. Sources report new bundles
// concurrently; one writer at a time (holding writer across compile and activate) takes every
// bundle that arrived so far, the newest of each source, so no update is lost and the active
// revision only moves forward.
type Reloader struct {
	opts   Options
	target Activator

	// writer is held by the one goroutine compiling and activating; it guards good and hashes.
	writer  sync.Mutex
	good    []*bundle.Bundle // each source's bundle in the active revision (or waiting for the others)
	hashes  []string         // content hashes of good, "" for a source not yet in an active revision
	refused []string         // content hash of each source's last refused bundle

	mu      sync.Mutex
	pending map[int]*bundle.Bundle // the newest bundle of each source not yet taken by the writer
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
	n := len(opts.Sources)
	return &Reloader{opts: opts, target: target, good: make([]*bundle.Bundle, n), hashes: make([]string, n), refused: make([]string, n), pending: map[int]*bundle.Bundle{}}
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
		r.good[i] = b
	}
	if !remote {
		if err := r.activate(ctx, r.good, true); err != nil {
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

// update takes a new bundle (or the error reading it) for source i and settles it.
func (r *Reloader) update(ctx context.Context, i int, b *bundle.Bundle, err error) {
	if err != nil {
		r.refuse(err)
		return
	}
	r.mu.Lock()
	r.pending[i] = b
	r.mu.Unlock()
	r.settle(ctx)
}

// settle activates the revision the pending bundles make with the other sources' good ones. It
// runs as the one writer: a caller that finds its bundle already taken by another writer returns
// at once. Until every source has delivered a bundle nothing is activated. When the pending
// bundles of several sources together are refused, each is tried alone, in source order, so that
// one source's broken bundle does not cost another's good one.
func (r *Reloader) settle(ctx context.Context) {
	r.writer.Lock()
	defer r.writer.Unlock()
	r.mu.Lock()
	changes := r.pending
	r.pending = map[int]*bundle.Bundle{}
	r.mu.Unlock()
	hashes := map[int]string{}
	for i, b := range changes {
		// The active or the last refused bundle again (a server without ETags): nothing to do.
		if h := contentHash(b); h == r.hashes[i] || h == r.refused[i] {
			delete(changes, i)
		} else {
			hashes[i] = h
		}
	}
	if len(changes) == 0 {
		return
	}
	next := slices.Clone(r.good)
	for i, b := range changes {
		next[i] = b
	}
	if slices.Contains(next, nil) { // waiting for another remote source
		r.good = next
		return
	}
	first := slices.Contains(r.hashes, "")
	err := r.activate(ctx, next, false)
	switch {
	case err == nil:
		return
	case first:
		// Before the first activation there is no good revision to try the bundles against one
		// by one: they wait together for the next change.
		r.good = next
		fallthrough
	case len(changes) == 1:
		for i := range changes {
			r.refused[i] = hashes[i]
		}
		return
	}
	for _, i := range slices.Sorted(maps.Keys(changes)) {
		one := slices.Clone(r.good)
		one[i] = changes[i]
		if r.activate(ctx, one, false) != nil { // recorded; the others are still tried
			r.refused[i] = hashes[i]
		}
	}
}

// activate compiles bundles into a revision and hands it to the target, recording the outcome. At
// start-up (initial) a failure is the caller's to report: the process does not start. The caller
// is the writer (or Start, before any other).
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
	r.good = bundles
	r.hashes = make([]string, len(bundles))
	for i, b := range bundles {
		r.hashes[i] = contentHash(b)
	}
	r.mu.Lock()
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
