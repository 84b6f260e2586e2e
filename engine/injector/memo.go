package injector

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// WithMemo keeps the answers to the last size distinct admissions of each bundle revision, mutating
// and validating each, and reuses them for a pod that comes again: the replicas of one workload
// reach the webhooks as the same pod, byte for byte, so a rollout of 50 replicas evaluates policy
// once per webhook. The key is everything the answer depends on (the pod and old pod as sent, the
// request less its uid, the namespace's labels and annotations), hashed with SHA-256. Revisions
// whose policy is not Pure never reuse answers. An answer from the memo carries no Pod (only the
// patch is kept): give a memo to an injector whose callers need the patch, the webhooks without a
// shadow bundle. Zero turns memoising off.
func WithMemo(size int) Option { return func(i *Injector) { i.memoSize = size } }

// memo remembers answers of one revision: the decision, the patch and whether the pod was already
// current, or the verdict; never the injected pod. A nil memo remembers nothing.
type memo struct {
	answers  *lru.Cache[[sha256.Size]byte, Result]
	verdicts *lru.Cache[[sha256.Size]byte, policy.Verdict]
	metrics  *metrics.Metrics
}

// maxMemoPatch is the largest patch a memo keeps; the answers for larger pods are recomputed.
const maxMemoPatch = 256 << 10

func newMemo(size int, m *metrics.Metrics) *memo {
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
	return &memo{answers: answers, verdicts: verdicts, metrics: m}
}

// memoKey is the key of one admission at one endpoint; the zero key when there is no memo.
type memoKey struct {
	endpoint string
	sum      [sha256.Size]byte
}

// key is the memo key of req at endpoint in namespace ns.
func (m *memo) key(endpoint string, req *admission.Request, ns cluster.Namespace, sel *Selection) memoKey {
	if m == nil {
		return memoKey{}
	}
	return memoKey{endpoint: endpoint, sum: hashAdmission(endpoint, req, ns, sel)}
}

// result is the remembered answer to the admission of key.
func (m *memo) result(key memoKey) (Result, bool) {
	if m == nil {
		return Result{}, false
	}
	res, ok := m.answers.Get(key.sum)
	m.metrics.Memo(key.endpoint, ok)
	return res, ok
}

// keepResult remembers res as the answer to the admission of key, without its pod.
func (m *memo) keepResult(key memoKey, res Result) {
	if m == nil || len(res.Patch) > maxMemoPatch {
		return
	}
	res.Pod = nil // the webhook answers with the patch; the pod would only hold memory
	m.answers.Add(key.sum, res)
}

// verdict is the remembered verdict on the admission of key.
func (m *memo) verdict(key memoKey) (policy.Verdict, bool) {
	if m == nil {
		return policy.Verdict{}, false
	}
	v, ok := m.verdicts.Get(key.sum)
	m.metrics.Memo(key.endpoint, ok)
	return v, ok
}

// keepVerdict remembers v as the verdict on the admission of key.
func (m *memo) keepVerdict(key memoKey, v policy.Verdict) {
	if m != nil {
		m.verdicts.Add(key.sum, v)
	}
}

// hashAdmission hashes everything a pure revision's answer at endpoint depends on, each field
// length-prefixed so that no two different admissions write the same bytes.
func hashAdmission(endpoint string, req *admission.Request, ns cluster.Namespace, sel *Selection) [sha256.Size]byte {
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
	if sel != nil {
		put(sel.Name)
		put(sel.Tag)
		putMap(sel.Label)
		if sel.Forced {
			put("forced")
		} else {
			put("")
		}
		for _, list := range [][]string{sel.Reasons, sel.Warnings} {
			writeLen(h, len(list))
			for _, s := range list {
				put(s)
			}
		}
	} else {
		put("")
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

func writeLen(h hash.Hash, n int) {
	var b [binary.MaxVarintLen64]byte
	h.Write(b[:binary.PutUvarint(b[:], uint64(n))])
}
