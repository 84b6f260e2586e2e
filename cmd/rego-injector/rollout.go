package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/rollout"
)

func rolloutCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster (default $KUBECONFIG, or the pod's service account in a cluster)")
	namespace := fs.String("namespace", "", "restart only the workloads of this namespace (default: all)")
	maxUnavailable := fs.Int("max-unavailable", 1, "how many workloads restart at once")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long each workload may take to roll out and be ready before the rollout stops")
	confirm := fs.Bool("confirm", false, "restart the workloads; without it, print what would be done and change nothing")
	var e engineFlags
	e.register(fs)
	fs.Lookup("revision").Usage = "the revision, or the tag pointing at it, whose pods to bring up to date: those its labels and tags choose now (required)"
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	// Here --revision picks the pods to restart; the audit chooses each pod's revision as the
	// webhook does.
	revision := e.revision
	e.revision = ""
	switch {
	case revision == "":
		return fmt.Errorf("%w: --revision is required", errUsage)
	case *maxUnavailable < 1:
		return fmt.Errorf("%w: --max-unavailable %d: want 1 or more", errUsage, *maxUnavailable)
	case *timeout <= 0:
		return fmt.Errorf("%w: --timeout %s: want a positive duration", errUsage, *timeout)
	}
	log, err := newLogger(stderr, e.logLevel)
	if err != nil {
		return err
	}
	set, cs, err := clusterRevisions(ctx, "rollout", *kubeconfig, &e, stderr)
	if err != nil {
		return err
	}
	rev, tag, err := set.Resolve(revision)
	if err != nil {
		return fmt.Errorf("%w: --revision: %w", errUsage, err)
	}
	if tag != "" {
		fmt.Fprintf(stdout, "tag %s points at revision %s\n", tag, rev)
	}
	r, err := audit.RunCluster(ctx, set, cs, *namespace)
	if err != nil {
		return err
	}
	findings := selectFindings(r, rev)
	judged := 0
	for _, n := range r.Pods {
		judged += n
	}
	fmt.Fprintf(stdout, "%d pods judged; %d of revision %s to bring up to date\n", judged, len(findings), rev)
	res, err := rollout.Run(ctx, cs, rollout.NewPlan(findings), rollout.Options{
		MaxUnavailable: *maxUnavailable,
		Timeout:        *timeout,
		Confirm:        *confirm,
		Out:            stdout,
		Log:            log,
	})
	if err != nil {
		return err
	}
	if !*confirm && len(res.Pending) > 0 {
		fmt.Fprintln(stdout, "run again with --confirm to restart them")
	}
	return nil
}

// selectFindings picks the findings that a restart brings up to date and that revision would
// inject now: pods injected at another bundle revision (or by another revision), without their
// sidecar, or with another variant than policy picks.
func selectFindings(r audit.Report, revision string) []audit.Finding {
	var out []audit.Finding
	for _, f := range r.Findings {
		if f.Want.Rev != revision {
			continue
		}
		switch f.State {
		case audit.StateOutdated, audit.StateMissing, audit.StateVariant:
			out = append(out, f)
		}
	}
	return out
}
