package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rego-injector/rego-injector/engine/audit"
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
	log, err := newLogger(stderr, e.logLevel)
	if err != nil {
		return err
	}
	cs, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	if cs == nil {
		return fmt.Errorf("%w: audit needs a cluster: give --kubeconfig or set $KUBECONFIG", errUsage)
	}
	ns, err := syncedNamespaces(ctx, cs, log)
	if err != nil {
		return err
	}
	inj, err := e.revisionSet(ctx, ns, cs, log)
	if err != nil {
		return err
	}
	r, err := audit.RunCluster(ctx, inj, cs, *namespace)
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
