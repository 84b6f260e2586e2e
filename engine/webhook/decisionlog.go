package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// WithDecisionLog writes one JSON line per admission to w, with the fields OPA's decision logs use.
func WithDecisionLog(out io.Writer) Option {
	return func(w *Webhooks) { w.decisions = &decisionLog{enc: json.NewEncoder(out)} }
}

// decisionLog serialises decision log lines.
type decisionLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// decisionEntry is one decision log line. Field names follow OPA's decision logs.
type decisionEntry struct {
	DecisionID string                       `json:"decision_id"`
	Timestamp  time.Time                    `json:"timestamp"`
	Path       string                       `json:"path"`
	Labels     map[string]string            `json:"labels"`
	Bundles    map[string]map[string]string `json:"bundles"`
	Input      map[string]any               `json:"input"`
	Result     any                          `json:"result,omitempty"`
	Error      string                       `json:"error,omitempty"`
	Erased     []string                     `json:"erased"`
	Metrics    map[string]int64             `json:"metrics"`
}

// erased names what the logged input leaves out of, or blanks in, the policy input. Of the pod
// spec only container names and images and hostNetwork are kept (environment values hold secrets);
// annotation values that can hold whole manifests are blanked.
var erased = []string{
	"/input/object/spec", "/input/oldObject", "/input/namespace", "/input/owner", "/input/injector",
	"/input/request/userInfo/groups", "/input/request/userInfo/uid", "/input/request/userInfo/extra",
	"/input/object/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
}

// maxLoggedAnnotation is the longest annotation value a decision log line keeps; a longer one is
// blanked, as it may carry a whole manifest.
const maxLoggedAnnotation = 256

func (w *Webhooks) logDecision(path string, req *admission.Request, by served, result any, err error, took time.Duration) {
	if w.decisions == nil {
		return
	}
	e := decisionEntry{
		DecisionID: newID(),
		Timestamp:  time.Now().UTC(),
		Path:       path,
		Labels:     map[string]string{"app": "rego-injector"},
		Bundles:    bundlesOf(by),
		Input:      summary(req),
		Result:     result,
		Erased:     erased,
		Metrics:    map[string]int64{"timer_server_handler_ns": took.Nanoseconds()},
	}
	if err != nil {
		e.Error = err.Error()
	}
	w.decisions.mu.Lock()
	defer w.decisions.mu.Unlock()
	if err := w.decisions.enc.Encode(e); err != nil {
		w.log.Error("write decision log", "err", err)
	}
}

// summary is the part of the policy input a decision log may hold: who asked for what, the pod's
// identity, labels and annotations, and its containers' names and images. Never env values.
func summary(req *admission.Request) map[string]any {
	var pod struct {
		Metadata map[string]any `json:"metadata"`
		Spec     struct {
			Containers     []struct{ Name, Image string } `json:"containers"`
			InitContainers []struct{ Name, Image string } `json:"initContainers"`
			HostNetwork    bool                           `json:"hostNetwork"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(req.Object.Raw, &pod)
	meta := map[string]any{}
	for _, k := range []string{"name", "generateName", "namespace", "labels", "ownerReferences"} {
		if v, ok := pod.Metadata[k]; ok {
			meta[k] = v
		}
	}
	if ann, ok := pod.Metadata["annotations"].(map[string]any); ok {
		masked := make(map[string]any, len(ann))
		for k, v := range ann {
			if s, _ := v.(string); len(s) > maxLoggedAnnotation || k == "kubectl.kubernetes.io/last-applied-configuration" {
				v = "(erased)"
			}
			masked[k] = v
		}
		meta["annotations"] = masked
	}
	containers := func(cs []struct{ Name, Image string }) []map[string]string {
		out := make([]map[string]string, len(cs))
		for i, c := range cs {
			out[i] = map[string]string{"name": c.Name, "image": c.Image}
		}
		return out
	}
	return map[string]any{
		"request": map[string]any{
			"uid": req.UID, "namespace": req.Namespace, "name": req.Name, "operation": req.Operation,
			"kind": req.Kind, "userInfo": map[string]any{"username": req.UserInfo.Username}, "dryRun": req.DryRun != nil && *req.DryRun,
		},
		"object": map[string]any{
			"metadata": meta,
			"spec": map[string]any{
				"containers": containers(pod.Spec.Containers), "initContainers": containers(pod.Spec.InitContainers),
				"hostNetwork": pod.Spec.HostNetwork,
			},
		},
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// verdictResult is how a validation verdict appears in the decision log.
func verdictResult(v policy.Verdict) map[string]any {
	return map[string]any{"deny": nonNil(v.Deny), "warn": nonNil(v.Warn), "dryrun": nonNil(v.DryRun)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// bundlesOf is the decision log's "bundles": the bundle revision by the name of the revision that
// served it ("default" when no revision was chosen by name), with the tag that chose it.
func bundlesOf(by served) map[string]map[string]string {
	name, b := by.name, map[string]string{"revision": by.bundle}
	if name == "" {
		name = inject.DefaultRev
	}
	if by.tag != "" {
		b["tag"] = by.tag
	}
	return map[string]map[string]string{name: b}
}
