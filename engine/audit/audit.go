// Package audit compares the pods running in a cluster with what the active bundle revision would
// decide for them if they were created now.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
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
}

// Report is one audit.
type Report struct {
	// Revision is the bundle revision the pods were judged by.
	Revision string `json:"revision"`
	// Pods counts the pods judged, by state.
	Pods map[State]int `json:"pods"`
	// Findings lists the pods that disagree with policy, grouped by namespace and owner.
	Findings []Finding `json:"findings"`
}

// Run judges every pod with inj's active revision. A pod that cannot be judged is a finding of
// state error; Run itself fails only when no revision is active.
func Run(ctx context.Context, inj *injector.Injector, pods []corev1.Pod) (Report, error) {
	r := Report{Pods: map[State]int{}, Findings: []Finding{}}
	for i := range pods {
		f, err := judge(ctx, inj, &pods[i])
		if errors.Is(err, injector.ErrNotActive) {
			return r, err
		}
		if f.State == StateCurrent || f.State == StateNotInjected {
			r.Pods[f.State]++
			r.Revision = f.Want.Revision
			continue
		}
		r.Pods[f.State]++
		r.Findings = append(r.Findings, f)
	}
	if r.Revision == "" {
		r.Revision = inj.Revision()
	}
	sort.SliceStable(r.Findings, func(a, b int) bool {
		fa, fb := r.Findings[a], r.Findings[b]
		if fa.Namespace != fb.Namespace {
			return fa.Namespace < fb.Namespace
		}
		if oa, ob := ownerKey(fa.Owner), ownerKey(fb.Owner); oa != ob {
			return oa < ob
		}
		return fa.Pod < fb.Pod
	})
	return r, nil
}

func ownerKey(o *workload.Owner) string {
	if o == nil {
		return ""
	}
	return o.Kind + "/" + o.Name
}

// judge decides on the pod as it was before injection, and compares with what it carries.
func judge(ctx context.Context, inj *injector.Injector, pod *corev1.Pod) (Finding, error) {
	f := Finding{Namespace: pod.Namespace, Pod: pod.Name}
	fail := func(err error) (Finding, error) {
		f.State, f.Reason = StateError, err.Error()
		return f, err
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
		f.Have = Injection{Injected: true, Variant: st.Variant, Revision: st.Revision}
		if _, err := inject.Strip(obj); err != nil {
			return fail(fmt.Errorf("strip the injection: %w", err))
		}
	}
	in, err := injector.Offline(obj, pod.Namespace, nil)
	if err != nil {
		return fail(err)
	}
	d, rev, err := inj.Decide(ctx, in)
	if err != nil {
		return fail(fmt.Errorf("decide: %w", err))
	}
	f.Want = Injection{Injected: d.Inject, Variant: d.Variant, Revision: rev}
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
	case st.Revision != rev:
		f.State, f.Reason = StateOutdated, fmt.Sprintf("injected at revision %s, the bundle is now at %s", st.Revision, rev)
	case st.Variant != d.Variant:
		f.State, f.Reason = StateVariant, fmt.Sprintf("injected with variant %s, policy now picks %s", st.Variant, d.Variant)
	default:
		f.State = StateCurrent
	}
	return f, nil
}
