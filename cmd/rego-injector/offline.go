package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"k8s.io/client-go/kubernetes"

	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/manifest"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// offlineFlags are the flags inject, explain and check share.
type offlineFlags struct {
	file, namespace, labels, kubeconfig string
	as                                  string
	asGroups                            listFlag
	engine                              engineFlags
}

// register adds the flags; withFile adds -f FILE (check has its own -f).
func (o *offlineFlags) register(fs *flag.FlagSet, withFile bool) {
	if withFile {
		fs.StringVar(&o.file, "f", "", "manifest file to read, - for standard input (required)")
	}
	fs.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	fs.StringVar(&o.labels, "namespace-labels", "", "labels every namespace carries, k=v,k2=v2 (ignored with --kubeconfig)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "read namespace labels from this cluster")
	fs.StringVar(&o.as, "as", "", "the user the pods are created as, for overrides policy reserves to some users (as kubectl --as; e.g. system:serviceaccount:ci:deployer)")
	fs.Var(&o.asGroups, "as-group", "a group of that user (repeatable, as kubectl --as-group)")
	o.engine.register(fs)
}

// processor wires the injector the offline commands share with the webhook.
func (o *offlineFlags) processor(ctx context.Context, stderr io.Writer) (*manifest.Processor, error) {
	log, err := newLogger(stderr, o.engine.logLevel)
	if err != nil {
		return nil, err
	}
	ns, cs, err := offlineNamespaces(ctx, o.kubeconfig, o.labels, log)
	if err != nil {
		return nil, err
	}
	set, err := o.engine.revisionSet(ctx, ns, cs, log, injector.WithOfflineUser(o.as, o.asGroups))
	if err != nil {
		return nil, err
	}
	return &manifest.Processor{Injector: set, Namespace: o.namespace}, nil
}

// input opens -f: the named file, or stdin for "-".
func (o *offlineFlags) input(stdin io.Reader) (io.ReadCloser, error) {
	switch o.file {
	case "":
		return nil, fmt.Errorf("%w: -f FILE is required (- reads standard input)", errUsage)
	case "-":
		return io.NopCloser(stdin), nil
	}
	return os.Open(o.file)
}

// defaultInjectorNamespace is where deploy/ and the chart's usual release put the injector.
const defaultInjectorNamespace = "rego-injector-system"

// engineFlags are the flags of every command that runs the injector outside serve.
type engineFlags struct {
	ownNamespace, logLevel string
	bundles                bundleFlags
	revision               string
	tags                   listFlag
}

func (e *engineFlags) register(fs *flag.FlagSet) {
	e.bundles.register(fs, false)
	fs.StringVar(&e.revision, "revision", "", "answer with this revision (or the revision this tag points at) whatever revision the pods' and namespaces' labels name (they still decide whether a pod is injected at all); absent: as the webhook chooses")
	fs.Var(&e.tags, "tag", "TAG=REVISION: a tag, as the tags ConfigMap holds it in a cluster (repeatable; absent with a cluster: the cluster's tags)")
	fs.StringVar(&e.ownNamespace, "injector-namespace", os.Getenv("POD_NAMESPACE"), "the namespace the webhook runs in, as serve's --injector-namespace (policy never injects it)")
	fs.StringVar(&e.logLevel, "log-level", "warn", "debug, info, warn or error")
}

// revisions loads each revision's bundles and activates them, each in an injector reading
// namespaces from ns, behind the router; with --revision, that revision answers every pod.
// The tags are --tag's, else, with a cluster (cs), those of its tags ConfigMap in the injector's
// namespace (rego-injector-system unless --injector-namespace says otherwise).
func (e *engineFlags) revisionSet(ctx context.Context, ns cluster.Namespaces, cs kubernetes.Interface, log *slog.Logger, opts ...injector.Option) (*revisions.Set, error) {
	named, err := e.bundles.named()
	if err != nil {
		return nil, err
	}
	tags, err := parseTags(e.tags)
	if err != nil {
		return nil, err
	}
	if len(e.tags) == 0 && cs != nil {
		where := e.ownNamespace
		if where == "" {
			where = defaultInjectorNamespace
		}
		if tags, err = revisions.ReadTags(ctx, cs, where); err != nil {
			return nil, err
		}
	}
	revs := map[string]*injector.Injector{}
	for name, specs := range named {
		p, err := e.bundles.loadPolicy(ctx, specs)
		if err != nil {
			return nil, fmt.Errorf("revision %s: %w", name, err)
		}
		inj := injector.New(ns, append([]injector.Option{injector.WithLogger(log), injector.WithOwnNamespace(e.ownNamespace)}, opts...)...)
		if err := inj.Activate(p); err != nil {
			return nil, fmt.Errorf("revision %s: %w", name, err)
		}
		revs[name] = inj
	}
	r, err := router(ctx)
	if err != nil {
		return nil, err
	}
	set, err := revisions.NewSet(r, revs, tags, ns)
	if err != nil {
		return nil, err
	}
	if e.revision != "" {
		set = set.Forced(e.revision)
	}
	return set, nil
}

func injectCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	var o offlineFlags
	o.register(fs, true)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	in, err := o.input(stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	p, err := o.processor(ctx, stderr)
	if err != nil {
		return err
	}
	_, err = p.Inject(ctx, in, stdout)
	return err
}

func explainCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	var o offlineFlags
	o.register(fs, true)
	output := fs.String("o", "text", "output format: text or json")
	trace := fs.Bool("trace", false, "show the policy evaluation that decided each workload (OPA's trace, with file and line)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want text or json", errUsage, *output)
	}
	in, err := o.input(stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	p, err := o.processor(ctx, stderr)
	if err != nil {
		return err
	}
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
