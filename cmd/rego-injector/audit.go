package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/injector"
)

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster to audit (default $KUBECONFIG, or the pod's service account in a cluster)")
	namespace := fs.String("namespace", "", "audit only this namespace (default: all)")
	ownNamespace := fs.String("injector-namespace", os.Getenv("POD_NAMESPACE"), "the namespace the webhook runs in, as serve's --injector-namespace (policy excludes it)")
	output := fs.String("o", "table", "output format: table or json")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	var bf bundleFlags
	bf.register(fs, false)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	log, err := newLogger(stderr, *logLevel)
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
	p, err := bf.loadPolicy(ctx)
	if err != nil {
		return err
	}
	inj := injector.New(ns, injector.WithLogger(log), injector.WithOwnNamespace(*ownNamespace))
	if err := inj.Activate(p); err != nil {
		return err
	}
	pods, err := audit.ListPods(ctx, cs, *namespace)
	if err != nil {
		return err
	}
	r, err := audit.Run(ctx, inj, pods)
	if err != nil {
		return err
	}
	if *output == "json" {
		return audit.WriteJSON(stdout, r)
	}
	return audit.WriteTable(stdout, r)
}
