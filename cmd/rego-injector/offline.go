package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/manifest"
)

// offlineFlags are the flags inject and explain share.
type offlineFlags struct {
	file, namespace, labels, kubeconfig, logLevel string
	bundles                                       bundleFlags
}

func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.file, "f", "", "manifest file to read, - for standard input (required)")
	fs.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	fs.StringVar(&o.labels, "namespace-labels", "", "labels every namespace carries, k=v,k2=v2 (ignored with --kubeconfig)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "read namespace labels from this cluster")
	o.bundles.register(fs, false)
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
}

// processor wires the injector the offline commands share with the webhook, and opens the input.
func (o *offlineFlags) processor(ctx context.Context, stdin io.Reader, stderr io.Writer) (*manifest.Processor, io.ReadCloser, error) {
	if o.file == "" {
		return nil, nil, fmt.Errorf("%w: -f FILE is required (- reads standard input)", errUsage)
	}
	log, err := newLogger(stderr, o.logLevel)
	if err != nil {
		return nil, nil, err
	}
	ns, err := offlineNamespaces(ctx, o.kubeconfig, o.labels, log)
	if err != nil {
		return nil, nil, err
	}
	p, err := o.bundles.loadPolicy(ctx)
	if err != nil {
		return nil, nil, err
	}
	inj := injector.New(ns, injector.WithLogger(log), injector.WithOwnNamespace(os.Getenv("POD_NAMESPACE")))
	if err := inj.Activate(p); err != nil {
		return nil, nil, err
	}
	in := io.NopCloser(stdin)
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return nil, nil, err
		}
		in = f
	}
	return &manifest.Processor{Injector: inj, Namespace: o.namespace}, in, nil
}

func injectCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	var o offlineFlags
	o.register(fs)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	p, in, err := o.processor(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = p.Inject(ctx, in, stdout)
	return err
}

func explainCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	var o offlineFlags
	o.register(fs)
	output := fs.String("o", "text", "output format: text or json")
	trace := fs.Bool("trace", false, "show the policy evaluation that decided each workload (OPA's trace, with file and line)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want text or json", errUsage, *output)
	}
	p, in, err := o.processor(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	defer in.Close()
	p.Trace = *trace
	workloads, err := p.Explain(ctx, in)
	if err != nil {
		return err
	}
	if *output == "json" {
		return manifest.WriteJSON(stdout, workloads)
	}
	return manifest.WriteText(stdout, workloads)
}
