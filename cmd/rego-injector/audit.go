package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster to audit (default $KUBECONFIG, or the pod's service account in a cluster)")
	namespace := fs.String("namespace", "", "audit only this namespace (default: all)")
	output := fs.String("o", "table", "output format: table or json")
	fail := fs.Bool("fail", false, "exit 1 when any pod disagrees with policy (for a CronJob or a pipeline)")
	var e engineFlags
	e.register(fs)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	set, cs, err := clusterRevisions(ctx, "audit", *kubeconfig, &e, stderr)
	if err != nil {
		return err
	}
	r, err := audit.RunCluster(ctx, set, cs, *namespace)
	if err != nil {
		return err
	}
	if *output == "json" {
		err = audit.WriteJSON(stdout, r)
	} else {
		err = audit.WriteTable(stdout, r)
	}
	if err == nil && *fail && len(r.Findings) > 0 {
		return fmt.Errorf("%d pods disagree with policy at revision %s", len(r.Findings), r.Revision)
	}
	return err
}

// clusterRevisions is the cluster kubeconfig names, and the revisions e serves with its namespaces
// and tags, for the command cmd, which needs a cluster.
func clusterRevisions(ctx context.Context, cmd, kubeconfig string, e *engineFlags, stderr io.Writer) (*revisions.Set, kubernetes.Interface, error) {
	log, err := newLogger(stderr, e.logLevel)
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubeClient(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	if cs == nil {
		return nil, nil, fmt.Errorf("%w: %s needs a cluster: give --kubeconfig or set $KUBECONFIG", errUsage, cmd)
	}
	ns, err := syncedNamespaces(ctx, cs, log)
	if err != nil {
		return nil, nil, err
	}
	set, err := e.revisionSet(ctx, ns, cs, log)
	return set, cs, err
}
