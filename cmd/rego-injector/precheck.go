package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rego-injector/rego-injector/engine/registration"
)

// errOverlap: precheck found injector entries that one pod reaches together.
var errOverlap = errors.New("overlapping injector webhooks")

func precheckCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("precheck", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster to check (default $KUBECONFIG, or the pod's service account in a cluster)")
	output := fs.String("o", "table", "output format: table or json")
	injectorNamespace := fs.String("injector-namespace", "rego-injector-system", "the injector's namespace, where the tags ConfigMap is")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	cs, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	if cs == nil {
		return fmt.Errorf("%w: precheck needs a cluster: give --kubeconfig or set $KUBECONFIG", errUsage)
	}
	state, err := registration.Observe(ctx, cs, *injectorNamespace)
	if err != nil {
		return err
	}
	r := registration.Check(state)
	if *output == "json" {
		err = registration.WriteJSON(stdout, r)
	} else {
		err = registration.WriteTable(stdout, r)
	}
	if err == nil && len(r.Overlaps) > 0 {
		return fmt.Errorf("%w: %d pairs of entries can be called for the same pod", errOverlap, len(r.Overlaps))
	}
	return err
}
