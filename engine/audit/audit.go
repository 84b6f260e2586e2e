// Package audit compares the pods running in a cluster with what the active bundle revision would
// decide for them if they were created now.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/revisions"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// State is how a pod stands against the current policy.
type State string

// The states. Only the last four are findings: pods to restart, or to look at.
const (
	// StateCurrent: injected at the current revision with the variant policy picks now.
	StateCurrent State = "current"
	// StateNotInjected: no sidecar, and policy agrees.
	StateNotInjected State = "not_injected"
	// StateMissing: policy would inject the pod, but it has no sidecar of ours (it was created
	// while the webhook was down or failing open, or before its namespace was enabled).
	StateMissing State = "missing"
	// StateUnexpected: the pod carries our sidecar, but policy would not inject it now.
	StateUnexpected State = "unexpected"
	// StateOutdated: injected at another bundle revision than the current one.
	StateOutdated State = "outdated"
	// StateVariant: injected with another variant than policy picks now.
	StateVariant State = "variant"
	// StateError: the pod could not be judged (its status annotation is unreadable, say).
	StateError State = "error"
)

// States lists every state in report order.
var States = []State{StateMissing, StateUnexpected, StateOutdated, StateVariant, StateError, StateCurrent, StateNotInjected}

// Finding is one pod whose state is not current or not_injected.
type Finding struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Owner is the pod's top controller (a Deployment rather than its ReplicaSet), if any.
	Owner *workload.Owner `json:"owner,omitempty"`
	State State           `json:"state"`
	// Have is what the pod carries; Want what policy decides now.
	Have Injection `json:"have"`
	Want Injection `json:"want"`
	// Reason says why, in a sentence.
	Reason string `json:"reason"`
}

// Injection is a pod's sidecar as the status annotation records it, or as policy would inject it.
type Injection struct {
	Injected bool   `json:"injected"`
	Variant  string `json:"variant,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Rev names the revision (default, canary...) that injected the pod, or would inject it now.
	Rev string `json:"rev,omitempty"`
}

// Decider decides on pods as the webhook would: an injector.Injector serving one revision, or a
// revisions.Set picking one per pod.
type Decider interface {
	Decide(ctx context.Context, a injector.Admission) (injector.Result, error)
	Revision() string
}

// Report is one audit.
type Report struct {
	// Revision is the bundle revision the pods were judged by; with named revisions, that of the
	// default tag's, and Revisions has each one's.
	Revision  string            `json:"revision"`
	Revisions map[string]string `json:"revisions,omitempty"`
	// Pods counts the pods judged, by state.
	Pods map[State]int `json:"pods"`
	// Findings lists the pods that disagree with policy, grouped by namespace and owner.
	Findings []Finding `json:"findings"`
}

// Run judges every pod with inj's active revision. A pod that cannot be judged is a finding of
// state error; Run itself fails when ctx ends, when no revision is active, or when the revision
// changes halfway (the report would mix two revisions' verdicts).
func Run(ctx context.Context, inj Decider, pods []corev1.Pod) (Report, error) {
	var a Auditor
	if err := a.Judge(ctx, inj, pods); err != nil {
		return Report{}, err
	}
	return a.Report(inj), nil
}

// Auditor judges pods a batch at a time (a page of a list), keeping only counts and findings.
type Auditor struct {
	revision  string
	revisions map[string]string
	pods      map[State]int
	findings  []Finding
}

// Judge judges pods and adds them to the report. See Run for its errors.
func (a *Auditor) Judge(ctx context.Context, inj Decider, pods []corev1.Pod) error {
	if a.pods == nil {
		a.pods, a.revisions = map[State]int{}, map[string]string{}
	}
	for i := range pods {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, res, err := judge(ctx, inj, &pods[i])
		if errors.Is(err, injector.ErrNotActive) {
			return err
		}
		if rev := res.Revision; rev != "" {
			name := ""
			if res.Selection != nil {
				name = res.Selection.Name
			}
			if was, seen := a.revisions[name]; seen && was != rev {
				return fmt.Errorf("the bundle revision changed from %s to %s during the audit: %w", was, rev, ErrRevisionChanged)
			}
			a.revisions[name] = rev
		}
		a.pods[f.State]++
		if f.State != StateCurrent && f.State != StateNotInjected {
			a.findings = append(a.findings, f)
		}
	}
	return nil
}

// ErrRevisionChanged is returned when a bundle swap happens while an audit runs: run it again.
var ErrRevisionChanged = errors.New("audit interrupted by a bundle swap")

// Report is the findings so far, sorted by namespace, owner and pod.
func (a *Auditor) Report(inj Decider) Report {
	r := Report{Revision: inj.Revision(), Pods: map[State]int{}, Findings: slices.Clone(a.findings)}
	maps.Copy(r.Pods, a.pods)
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for name, rev := range a.revisions {
		if name == "" || (name == revisions.DefaultRevision && len(a.revisions) == 1) {
			r.Revision = rev
			continue
		}
		if r.Revisions == nil {
			r.Revisions = map[string]string{}
		}
		r.Revisions[name] = rev
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		fa, fb := r.Findings[i], r.Findings[j]
		if fa.Namespace != fb.Namespace {
			return fa.Namespace < fb.Namespace
		}
		if oa, ob := ownerKey(fa.Owner), ownerKey(fb.Owner); oa != ob {
			return oa < ob
		}
		return fa.Pod < fb.Pod
	})
	return r
}

func ownerKey(o *workload.Owner) string {
	if o == nil {
		return ""
	}
	return o.Kind + "/" + o.Name
}

// judge decides on the pod as it was before injection, compares with what it carries, and returns
// the decision's result (its Revision "" when none decided).
func judge(ctx context.Context, inj Decider, pod *corev1.Pod) (Finding, injector.Result, error) {
	f := Finding{Namespace: pod.Namespace, Pod: pod.Name}
	fail := func(err error) (Finding, injector.Result, error) {
		f.State, f.Reason = StateError, err.Error()
		return f, injector.Result{}, err
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return fail(fmt.Errorf("encode the pod: %w", err))
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fail(fmt.Errorf("decode the pod: %w", err))
	}
	delete(obj, "status")
	f.Owner = workload.OwnerOf(obj)
	st, injected, err := inject.ReadStatus(obj)
	if err != nil {
		return fail(fmt.Errorf("read the status annotation: %w", err))
	}
	if injected {
		f.Have = Injection{Injected: true, Variant: st.Variant, Revision: st.Revision, Rev: st.Rev}
		if _, err := inject.Strip(obj); err != nil {
			return fail(fmt.Errorf("strip the injection: %w", err))
		}
	}
	in, err := injector.Offline(obj, pod.Namespace, nil)
	if err != nil {
		return fail(err)
	}
	if injected && st.Requester != nil {
		// Policy honoured an override because of who asked: ask again as the same requester.
		in.Request.UserInfo.Username, in.Request.UserInfo.Groups = st.Requester.Username, st.Requester.Groups
	}
	res, err := inj.Decide(ctx, in)
	if err != nil {
		return fail(fmt.Errorf("decide: %w", err))
	}
	d, rev := res.Decision, res.Revision
	f.Want = Injection{Injected: d.Inject, Variant: d.Variant, Revision: rev}
	if res.Selection != nil && d.Inject {
		f.Want.Rev = res.Selection.Name
	}
	if !d.Inject {
		f.Want.Revision = ""
	}
	why := ""
	if len(d.Reasons) > 0 {
		why = d.Reasons[0]
	}
	switch {
	case !d.Inject && !injected:
		f.State = StateNotInjected
	case d.Inject && !injected:
		f.State, f.Reason = StateMissing, fmt.Sprintf("policy would inject variant %s (%s), but the pod has no sidecar of ours", d.Variant, why)
	case !d.Inject:
		f.State, f.Reason = StateUnexpected, fmt.Sprintf("the pod carries variant %s from revision %s, but policy would not inject it now: %s", st.Variant, st.Revision, why)
	case !st.InjectedBy(rev, f.Want.Rev):
		f.State, f.Reason = StateOutdated, fmt.Sprintf("injected at %s, the bundle is now at %s", atRevision(f.Have, "revision "), atRevision(f.Want, ""))
	case st.Variant != d.Variant:
		f.State, f.Reason = StateVariant, fmt.Sprintf("injected with variant %s, policy now picks %s", st.Variant, d.Variant)
	default:
		f.State = StateCurrent
	}
	return f, res, nil
}

// atRevision names a bundle revision (after prefix), or the named revision serving it and its
// bundle revision when it is not the default one.
func atRevision(i Injection, prefix string) string {
	if i.Rev == "" || i.Rev == revisions.DefaultRevision {
		return prefix + i.Revision
	}
	return fmt.Sprintf("revision %s (bundle %s)", i.Rev, i.Revision)
}
