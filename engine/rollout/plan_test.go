package rollout_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/rollout"
	"github.com/rego-injector/rego-injector/engine/workload"
)

func owned(ns, pod, apiVersion, kind, name string, state audit.State) audit.Finding {
	f := audit.Finding{Namespace: ns, Pod: pod, State: state,
		Have: audit.Injection{Injected: true, Variant: "classic", Revision: "default-1"},
		Want: audit.Injection{Injected: true, Variant: "classic", Revision: "default-2"}}
	if kind != "" {
		f.Owner = &workload.Owner{APIVersion: apiVersion, Kind: kind, Name: name}
	}
	switch state {
	case audit.StateMissing:
		f.Have = audit.Injection{}
	case audit.StateVariant:
		f.Have.Revision, f.Have.Variant = "default-2", "native"
	}
	return f
}

func TestNewPlan(t *testing.T) {
	findings := []audit.Finding{
		owned("shop", "web-7d9f-b", "apps/v1", "Deployment", "web", audit.StateOutdated),
		owned("shop", "debug", "", "", "", audit.StateMissing),
		owned("shop", "web-7d9f-a", "apps/v1", "Deployment", "web", audit.StateOutdated),
		owned("shop", "web-7d9f-c", "apps/v1", "Deployment", "web", audit.StateMissing),
		owned("shop", "db-0", "apps/v1", "StatefulSet", "db", audit.StateVariant),
		owned("kube-system", "agent-x1", "apps/v1", "DaemonSet", "agent", audit.StateOutdated),
		owned("shop", "migrate-28f-q", "batch/v1", "Job", "migrate-28f", audit.StateOutdated),
		owned("shop", "orphan-x", "apps/v1", "ReplicaSet", "orphan", audit.StateOutdated),
		owned("shop", "legacy-1", "v1", "ReplicationController", "legacy", audit.StateOutdated),
		owned("shop", "canary-5c-a", "argoproj.io/v1alpha1", "Rollout", "canary", audit.StateOutdated),
		owned("shop", "dc-3-a", "apps.openshift.io/v1", "DeploymentConfig", "dc", audit.StateOutdated),
		owned("shop", "clone-a", "apps.kruise.io/v1alpha1", "CloneSet", "clone", audit.StateOutdated),
		owned("shop", "fake-a", "example.com/v1", "Deployment", "fake", audit.StateOutdated),
		owned("kube-system", "etcd-node1", "v1", "Node", "node1", audit.StateOutdated),
		owned("shop", "db-1", "apps/v1", "StatefulSet", "db", audit.StateVariant),
	}
	p := rollout.NewPlan(findings)

	type want struct {
		name, pods, summary, why string
	}
	check := func(list string, got []rollout.Target, wants []want) {
		t.Helper()
		if len(got) != len(wants) {
			names := make([]string, len(got))
			for i, g := range got {
				names[i] = g.String()
			}
			t.Fatalf("%s: %d targets %v, want %d", list, len(got), names, len(wants))
		}
		for i, w := range wants {
			g := got[i]
			if g.String() != w.name || strings.Join(g.Pods, " ") != w.pods || g.Summary != w.summary {
				t.Errorf("%s[%d] = %s, pods %v, summary %q; want %s, pods %s, summary %q", list, i, g, g.Pods, g.Summary, w.name, w.pods, w.summary)
			}
			if w.why == "" && g.Why != "" || !strings.Contains(g.Why, w.why) {
				t.Errorf("%s: why %q, want it to say %q", g, g.Why, w.why)
			}
			if g.Why != "" && !strings.HasSuffix(g.Why, ".") {
				t.Errorf("%s: why %q is not a sentence", g, g.Why)
			}
		}
	}
	check("restart", p.Restart, []want{
		{"DaemonSet kube-system/agent", "agent-x1", "1 at revision default-1", ""},
		{"Deployment shop/web", "web-7d9f-a web-7d9f-b web-7d9f-c", "1 without the sidecar, 2 at revision default-1", ""},
		{"StatefulSet shop/db", "db-0 db-1", "2 with variant native instead of classic", ""},
	})
	check("manual", p.Manual, []want{
		{"DeploymentConfig shop/dc", "dc-3-a", "1 at revision default-1", "oc rollout latest dc/dc -n shop"},
		{"Rollout shop/canary", "canary-5c-a", "1 at revision default-1", "kubectl argo rollouts restart canary -n shop"},
	})
	check("unsafe", p.Unsafe, []want{
		{"Node kube-system/node1", "etcd-node1", "1 at revision default-1", "static pod of node node1"},
		{"CloneSet shop/clone", "clone-a", "1 at revision default-1", "does not know how CloneSet (apps.kruise.io/v1alpha1)"},
		{"Deployment shop/fake", "fake-a", "1 at revision default-1", "does not know how Deployment (example.com/v1)"},
		{"Job shop/migrate-28f", "migrate-28f-q", "1 at revision default-1", "restarting them would lose their work"},
		{"Pod shop/debug", "debug", "1 without the sidecar", "no controller"},
		{"ReplicaSet shop/orphan", "orphan-x", "1 at revision default-1", "delete its pods by hand, one at a time, or scale it"},
		{"ReplicationController shop/legacy", "legacy-1", "1 at revision default-1", "does not replace running pods"},
	})
}

func TestNewPlanBarePodsApart(t *testing.T) {
	p := rollout.NewPlan([]audit.Finding{
		owned("a", "one", "", "", "", audit.StateMissing),
		owned("a", "two", "", "", "", audit.StateError),
		owned("a", "one", "", "", "", audit.StateMissing),
	})
	if len(p.Unsafe) != 2 || len(p.Restart) != 0 || len(p.Manual) != 0 {
		t.Fatalf("two bare pods: %+v", p)
	}
	if got := p.Unsafe[0]; got.String() != "Pod a/one" || len(got.Pods) != 1 || got.Summary != "2 without the sidecar" {
		t.Errorf("a bare pod named twice: %s, pods %v, %q", got, got.Pods, got.Summary)
	}
	if got := p.Unsafe[1].Summary; got != "1 that could not be judged" {
		t.Errorf("an error finding: %q", got)
	}
	if p := rollout.NewPlan(nil); p.Restart != nil || p.Manual != nil || p.Unsafe != nil {
		t.Errorf("no findings, a plan: %+v", p)
	}
}

// TestRunLeavesAloneWithoutClient: targets left alone are reported and never reach the client,
// confirmed or not.
func TestRunLeavesAloneWithoutClient(t *testing.T) {
	p := rollout.NewPlan([]audit.Finding{
		owned("a", "bare", "", "", "", audit.StateMissing),
		owned("a", "job-x", "batch/v1", "Job", "job", audit.StateOutdated),
		owned("a", "canary-x", "argoproj.io/v1alpha1", "Rollout", "canary", audit.StateOutdated),
	})
	for _, confirm := range []bool{false, true} {
		var out bytes.Buffer
		res, err := rollout.Run(t.Context(), nil, p, rollout.Options{Confirm: confirm, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Skipped) != 3 || len(res.Restarted)+len(res.Failed)+len(res.Pending) != 0 {
			t.Errorf("confirm %v: %+v", confirm, res)
		}
		want := "leaving Rollout a/canary (1 pod: 1 at revision default-1) alone: the Argo Rollouts controller rolls it, with its own steps and analysis: run `kubectl argo rollouts restart canary -n a`.\n" +
			"leaving Job a/job (1 pod: 1 at revision default-1) alone: a Job runs its pods to completion and restarting them would lose their work: the pods it starts from now on, and a CronJob's next runs, get the current sidecar.\n" +
			"leaving Pod a/bare (1 pod: 1 without the sidecar) alone: it has no controller, so nothing would recreate it once deleted: recreate it from its manifest yourself.\n" +
			"nothing to restart\n"
		if out.String() != want {
			t.Errorf("confirm %v: output\n%s\nwant\n%s", confirm, out.String(), want)
		}
	}
}
