// Package rollout restarts the workloads whose pods carry an out-of-date sidecar, one at a time,
// waiting for each to be ready before the next.
package rollout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Plan is what Run acts on: the workloads it restarts, and those it leaves alone with the reason.
type Plan struct {
	// Restart lists the Deployments, StatefulSets and DaemonSets to restart, in order.
	Restart []Target
	// Manual lists workloads that another controller rolls (Argo Rollouts, OpenShift
	// DeploymentConfigs); their Why names the command that restarts them.
	Manual []Target
	// Unsafe lists pods that no restart of ours would replace safely: bare pods, Jobs' pods,
	// ReplicaSets and ReplicationControllers without a workload above them, unknown owners.
	Unsafe []Target
}

// Target is one workload and the pods of it that the findings name. A pod without a controller is
// its own target, of kind Pod.
type Target struct {
	Namespace string
	Owner     workload.Owner
	// Pods names the pods of the findings, sorted.
	Pods []string
	// Summary says what those pods carry, e.g. "2 at revision default-1, 1 without the sidecar".
	Summary string
	// Why is, for a target left alone, the reason in a sentence and what to do instead; "" for a
	// target to restart.
	Why string
}

// String names the target as "Deployment shop/web".
func (t Target) String() string {
	return t.Owner.Kind + " " + t.Namespace + "/" + t.Owner.Name
}

// describe is the target with its pods: "Deployment shop/web (2 pods: 2 at revision default-1)".
func (t Target) describe() string {
	return fmt.Sprintf("%s (%s: %s)", t, count(len(t.Pods), "pod"), t.Summary)
}

// NewPlan groups findings by namespace and top owner into targets and sorts each list by
// namespace, kind and name. It keeps every finding it is given: choosing which states to act on
// is the caller's.
func NewPlan(findings []audit.Finding) Plan {
	type key struct{ namespace, group, kind, name string }
	groups := map[key][]audit.Finding{}
	var order []key
	for _, f := range findings {
		o := workload.Owner{APIVersion: "v1", Kind: "Pod", Name: f.Pod}
		if f.Owner != nil {
			o = *f.Owner
		}
		k := key{f.Namespace, apiGroup(o.APIVersion), o.Kind, o.Name}
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	slices.SortFunc(order, func(a, b key) int {
		return strings.Compare(a.namespace+"\x00"+a.kind+"\x00"+a.name+"\x00"+a.group, b.namespace+"\x00"+b.kind+"\x00"+b.name+"\x00"+b.group)
	})
	var p Plan
	for _, k := range order {
		fs := groups[k]
		t := Target{Namespace: k.namespace, Summary: summary(fs)}
		t.Owner = workload.Owner{APIVersion: "v1", Kind: "Pod", Name: fs[0].Pod}
		if fs[0].Owner != nil {
			t.Owner = *fs[0].Owner
		}
		for _, f := range fs {
			t.Pods = append(t.Pods, f.Pod)
		}
		slices.Sort(t.Pods)
		t.Pods = slices.Compact(t.Pods)
		switch kind, why := classify(t); kind {
		case restart:
			p.Restart = append(p.Restart, t)
		case manual:
			t.Why = why
			p.Manual = append(p.Manual, t)
		default:
			t.Why = why
			p.Unsafe = append(p.Unsafe, t)
		}
	}
	return p
}

type action int

const (
	restart action = iota
	manual
	unsafe
)

// classify decides what becomes of t, and says why when it is not restarted.
func classify(t Target) (action, string) {
	o, ns := t.Owner, t.Namespace
	g := apiGroup(o.APIVersion)
	switch {
	case g == "apps" && (o.Kind == "Deployment" || o.Kind == "StatefulSet" || o.Kind == "DaemonSet"):
		return restart, ""
	case g == "argoproj.io" && o.Kind == "Rollout":
		return manual, fmt.Sprintf("the Argo Rollouts controller rolls it, with its own steps and analysis: run `kubectl argo rollouts restart %s -n %s`.", o.Name, ns)
	case o.Kind == "DeploymentConfig" && (g == "apps.openshift.io" || g == ""):
		return manual, fmt.Sprintf("OpenShift rolls a DeploymentConfig: run `oc rollout latest dc/%s -n %s`.", o.Name, ns)
	case g == "" && o.Kind == "Pod":
		return unsafe, "it has no controller, so nothing would recreate it once deleted: recreate it from its manifest yourself."
	case g == "batch" && (o.Kind == "Job" || o.Kind == "CronJob"):
		return unsafe, "a Job runs its pods to completion and restarting them would lose their work: the pods it starts from now on, and a CronJob's next runs, get the current sidecar."
	case (g == "apps" || g == "extensions") && o.Kind == "ReplicaSet", g == "" && o.Kind == "ReplicationController":
		return unsafe, fmt.Sprintf("a %s with no workload above it does not replace running pods when its template changes, so a restart would roll nothing: delete its pods by hand, one at a time, or scale it to 0 and back.", o.Kind)
	case g == "" && o.Kind == "Node":
		return unsafe, fmt.Sprintf("a static pod of node %s: the kubelet runs it from a manifest file on the node, which is where to change it.", o.Name)
	}
	return unsafe, fmt.Sprintf("this command does not know how %s (%s) rolls its pods: restart it with that controller's own tooling.", o.Kind, o.APIVersion)
}

// apiGroup is the group of an apiVersion: "" for the core group's "v1".
func apiGroup(apiVersion string) string {
	g, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return ""
	}
	return g
}

// summary says what the pods of findings carry, most common first within each state:
// "2 at revision default-1, 1 without the sidecar, 1 with variant native instead of classic".
func summary(findings []audit.Finding) string {
	type part struct {
		state audit.State
		text  string
		n     int
	}
	var parts []*part
	index := map[string]*part{}
	for _, f := range findings {
		var text string
		switch f.State {
		case audit.StateOutdated:
			text = "at revision " + f.Have.Revision
		case audit.StateMissing:
			text = "without the sidecar"
		case audit.StateVariant:
			text = fmt.Sprintf("with variant %s instead of %s", f.Have.Variant, f.Want.Variant)
		case audit.StateUnexpected:
			text = "with a sidecar policy would not inject now"
		case audit.StateError:
			text = "that could not be judged"
		default:
			text = string(f.State)
		}
		p := index[text]
		if p == nil {
			p = &part{state: f.State, text: text}
			index[text] = p
			parts = append(parts, p)
		}
		p.n++
	}
	slices.SortStableFunc(parts, func(a, b *part) int {
		if sa, sb := slices.Index(audit.States, a.state), slices.Index(audit.States, b.state); sa != sb {
			return sa - sb
		}
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.text, b.text)
	})
	texts := make([]string, len(parts))
	for i, p := range parts {
		texts[i] = fmt.Sprintf("%d %s", p.n, p.text)
	}
	return strings.Join(texts, ", ")
}
