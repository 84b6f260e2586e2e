package injector

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// WithMemo keeps the answers to the last size distinct admissions of each bundle revision, mutating
// and validating each, and reuses them for a pod that comes again: the replicas of one workload
// reach the webhooks as the same pod, byte for byte, so a rollout of 50 replicas evaluates policy
// once per webhook. The key is everything the
// answer depends on (the pod and old pod as sent, the request less its uid, the namespace's labels
// and annotations), hashed with SHA-256. Revisions whose policy is not Pure, and injectors with a
// shadow bundle (which compares whole pods), never reuse answers. Zero turns memoising off.
func WithMemo(size int) Option { return func(i *Injector) { i.memoSize = size } }

// memo remembers answers of one revision. Only what the webhooks answer with is kept: the decision,
// the patch and whether the pod was already current, or the verdict; never the injected pod.
type memo struct {
	answers  *lru.Cache[[sha256.Size]byte, Result]
	verdicts *lru.Cache[[sha256.Size]byte, policy.Verdict]
}

// maxMemoPatch is the largest patch a memo keeps; the answers for larger pods are recomputed.
const maxMemoPatch = 256 << 10

func newMemo(size int) *memo {
	if size <= 0 {
		return nil
	}
	answers, err := lru.New[[sha256.Size]byte, Result](size)
	if err != nil {
		return nil
	}
	verdicts, err := lru.New[[sha256.Size]byte, policy.Verdict](size)
	if err != nil {
		return nil
	}
	return &memo{answers: answers, verdicts: verdicts}
}

// injectMemoised is Inject for the webhook: the active revision's memo answers an admission it has
// answered before. With a shadow bundle, which compares whole pods, nothing is memoised.
func (i *Injector) injectMemoised(ctx context.Context, req *admission.Request) (Result, error) {
	res, _, err := memoised(ctx, i, req, "inject",
		func(m *memo) *lru.Cache[[sha256.Size]byte, Result] {
			if i.shadow != nil {
				return nil
			}
			return m.answers
		},
		func(rev *revision, e *evaluation) (Result, error) { return rev.mutate(ctx, e) },
		func(res Result) (Result, bool) {
			res.Pod = nil // the webhook answers with the patch; the pod would only hold memory
			return res, len(res.Patch) <= maxMemoPatch
		})
	return res, err
}

// validateMemoised is Validate for the webhook, memoised as injectMemoised is.
func (i *Injector) validateMemoised(ctx context.Context, req *admission.Request) (policy.Verdict, string, error) {
	v, rev, err := memoised(ctx, i, req, "validate",
		func(m *memo) *lru.Cache[[sha256.Size]byte, policy.Verdict] { return m.verdicts },
		func(rev *revision, e *evaluation) (policy.Verdict, error) { return rev.policy.Validate(ctx, e.input) },
		func(v policy.Verdict) (policy.Verdict, bool) { return v, true })
	revision := ""
	if rev != nil {
		revision = rev.policy.Revision()
	}
	return v, revision, err
}

// memoised answers req at endpoint with the active revision: from the cache its memo keeps for the
// endpoint (cache may return nil: none) when the same admission was answered before, else with
// compute, remembering what store keeps. It returns the revision that answered, nil when none is
// active.
func memoised[T any](ctx context.Context, i *Injector, req *admission.Request, endpoint string,
	cache func(*memo) *lru.Cache[[sha256.Size]byte, T],
	compute func(*revision, *evaluation) (T, error),
	store func(T) (T, bool),
) (T, *revision, error) {
	var zero T
	rev := i.active.Load()
	if rev == nil {
		return zero, nil, ErrNotActive
	}
	in := Pod{Raw: req.Object.Raw, Request: req}
	ns, err := i.lookupNamespace(ctx, in)
	if err != nil {
		return zero, rev, err
	}
	var answers *lru.Cache[[sha256.Size]byte, T]
	if rev.memo != nil {
		answers = cache(rev.memo)
	}
	var key [sha256.Size]byte
	if answers != nil {
		key = memoKey(endpoint, req, ns)
		if v, ok := answers.Get(key); ok {
			i.metrics.Memo(endpoint, true)
			return v, rev, nil
		}
		i.metrics.Memo(endpoint, false)
	}
	e, err := i.evaluationIn(rev, in, ns)
	if err != nil {
		return zero, rev, err
	}
	v, err := compute(rev, e)
	if err == nil && answers != nil {
		if kept, ok := store(v); ok {
			answers.Add(key, kept)
		}
	}
	return v, rev, err
}

// memoKey hashes everything a pure revision's answer at endpoint depends on, each field
// length-prefixed so that no two different admissions write the same bytes.
func memoKey(endpoint string, req *admission.Request, ns cluster.Namespace) [sha256.Size]byte {
	h := sha256.New()
	put := func(s string) {
		writeLen(h, len(s))
		h.Write([]byte(s))
	}
	putBytes := func(b []byte) {
		writeLen(h, len(b))
		h.Write(b)
	}
	putMap := func(m map[string]string) {
		writeLen(h, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			put(k)
			put(m[k])
		}
	}
	put(endpoint)
	putBytes(req.Object.Raw)
	putBytes(req.OldObject.Raw)
	for _, s := range []string{
		req.Kind.Group, req.Kind.Version, req.Kind.Kind,
		req.Resource.Group, req.Resource.Version, req.Resource.Resource,
		req.SubResource, req.Name, req.Namespace, string(req.Operation),
		req.UserInfo.Username, req.UserInfo.UID,
	} {
		put(s)
	}
	writeLen(h, len(req.UserInfo.Groups))
	for _, g := range req.UserInfo.Groups {
		put(g)
	}
	writeLen(h, len(req.UserInfo.Extra))
	for _, k := range slices.Sorted(maps.Keys(req.UserInfo.Extra)) {
		put(k)
		writeLen(h, len(req.UserInfo.Extra[k]))
		for _, v := range req.UserInfo.Extra[k] {
			put(v)
		}
	}
	if req.DryRun != nil && *req.DryRun {
		put("dry-run")
	} else {
		put("")
	}
	put(ns.Name)
	putMap(ns.Labels)
	putMap(ns.Annotations)
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

func writeLen(h hash.Hash, n int) {
	var b [binary.MaxVarintLen64]byte
	h.Write(b[:binary.PutUvarint(b[:], uint64(n))])
}
