package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/registration"
	"github.com/rego-injector/rego-injector/engine/reload"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// bundleFlags are the flags that say where bundles come from and how they are verified.
type bundleFlags struct {
	sources          listFlag
	key, keyID, alg  string
	interval         time.Duration
	pollMin, pollMax time.Duration
	caFile           string
}

func (b *bundleFlags) register(fs *flag.FlagSet, served bool) {
	fs.Var(&b.sources, "bundle", "[NAME=]SRC: the bundle serving revision NAME (default: \"default\"): a directory, .tar.gz file"+map[bool]string{true: ", http(s) URL of a bundle server, or oci://host[:port]/repository:tag (or @sha256:digest) of a bundle in an OCI registry, oci+http:// for one that speaks plain HTTP; registry credentials come from $DOCKER_CONFIG/config.json", false: ""}[served]+" (repeatable: one revision per NAME, several bundles of one NAME served together; absent: the embedded default bundle as revision default)")
	fs.StringVar(&b.key, "bundle-verification-key", "", "public key every bundle must be signed with, as PEM text or a file holding it; absent: local bundles are not checked, and a signed bundle from a server is refused")
	fs.StringVar(&b.keyID, "bundle-verification-key-id", "default", "id the verification key is known by; OPA verifies every signature with this key, whatever key id the signature names")
	fs.StringVar(&b.alg, "bundle-signing-alg", "RS256", "signature algorithm of the verification key")
	if served {
		fs.DurationVar(&b.interval, "bundle-check-interval", 2*time.Second, "how often bundle directories and files are checked for changes")
		fs.DurationVar(&b.pollMin, "bundle-poll-min", 10*time.Second, "least delay between downloads from a bundle server or registry")
		fs.DurationVar(&b.pollMax, "bundle-poll-max", 20*time.Second, "most delay between downloads from a bundle server or registry")
		fs.StringVar(&b.caFile, "bundle-ca-file", "", "CA certificate of an https bundle server or OCI registry (absent: the system roots)")
	}
}

// named groups the --bundle specs by the revision they serve: NAME=SRC serves SRC as revision NAME,
// a bare SRC as revision "default". Several specs of one name make one revision together. A NAME
// is a DNS label, as its webhook configuration is named after it; a path or URL before '=' always
// holds '/', ':' or '.'.
func (b *bundleFlags) named() (map[string][]string, error) {
	out := map[string][]string{}
	for _, spec := range b.sources {
		name, src := revisions.DefaultRevision, spec
		if n, rest, ok := strings.Cut(spec, "="); ok && !strings.ContainsAny(n, "/:.") {
			if err := registration.ValidateName(n); err != nil {
				return nil, fmt.Errorf("%w: --bundle %s: %w", errUsage, spec, err)
			}
			name, src = n, rest
		}
		if src == "" {
			return nil, fmt.Errorf("%w: --bundle %s: no source after the revision name", errUsage, spec)
		}
		out[name] = append(out[name], src)
	}
	if len(out) == 0 {
		out[revisions.DefaultRevision] = nil // the embedded default bundle
	}
	return out, nil
}

// parseSources reads the bundle sources with their verification.
func (b *bundleFlags) parseSources(specs []string) ([]policy.Source, error) {
	var verify *policy.Verification
	if b.key != "" {
		var err error
		if verify, err = policy.NewVerification(b.key, b.keyID, b.alg); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	var out []policy.Source
	for _, spec := range specs {
		s, err := policy.ParseSource(spec, verify)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// loadPolicy reads the bundles of specs once (or the embedded default bundle when there are none)
// and compiles them, for the offline commands.
func (b *bundleFlags) loadPolicy(ctx context.Context, specs []string) (*policy.Policy, error) {
	if len(specs) == 0 {
		d, err := regoinjector.DefaultBundle()
		if err != nil {
			return nil, err
		}
		return policy.Compile(ctx, d)
	}
	sources, err := b.parseSources(specs)
	if err != nil {
		return nil, err
	}
	var bundles []*bundle.Bundle
	for _, s := range sources {
		if s.Remote() {
			return nil, fmt.Errorf("%w: --bundle %s: the offline commands read local bundles only", errUsage, s.Spec)
		}
		bd, err := s.Read(ctx)
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, bd)
	}
	return policy.Compile(ctx, bundles...)
}

// serveBundles activates the bundles named by specs on inj and keeps it on their newest good
// revision; with no specs, the embedded default bundle, which never changes. It returns a function
// reporting the reloader's status.
func (b *bundleFlags) serveBundles(ctx context.Context, name string, specs []string, inj *injector.Injector, m *metrics.Metrics, log *slog.Logger) (func() reload.Status, error) {
	if len(specs) == 0 {
		if b.key != "" {
			log.Warn("--bundle-verification-key has nothing to verify: the embedded default bundle is served", "bundle", name)
		}
		p, err := b.loadPolicy(ctx, nil)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := inj.Activate(p); err != nil {
			return nil, err
		}
		m.Activation(name, p.Revision(), time.Since(start))
		debug.FreeOSMemory() // compiling left megabytes of garbage: hand it back before serving
		log.Info("bundle revision activated", "bundle", name, "revision", p.Revision(), "source", "embedded")
		st := reload.Status{Revision: p.Revision(), Activations: 1, LastSuccess: time.Now()}
		return func() reload.Status { return st }, nil
	}
	sources, err := b.parseSources(specs)
	if err != nil {
		return nil, err
	}
	r := reload.New(inj, reload.Options{
		Name: name, Sources: sources, Interval: b.interval, PollMin: b.pollMin, PollMax: b.pollMax,
		CAFile: b.caFile, Log: log, Metrics: m,
	})
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r.Status, nil
}

// router compiles the embedded revision selection policy.
func router(ctx context.Context) (*revisions.Router, error) {
	name, module, err := regoinjector.SelectionPolicy()
	if err != nil {
		return nil, err
	}
	return revisions.NewRouter(ctx, name, module)
}

// parseTags reads --tag TAG=REVISION flags.
func parseTags(specs []string) (revisions.StaticTags, error) {
	tags := revisions.StaticTags{}
	for _, spec := range specs {
		tag, rev, ok := strings.Cut(spec, "=")
		if !ok || registration.ValidateName(tag) != nil || registration.ValidateName(rev) != nil {
			return nil, fmt.Errorf("%w: --tag %q: want TAG=REVISION, each a DNS label (lowercase letters, digits and '-')", errUsage, spec)
		}
		tags[tag] = rev
	}
	return tags, nil
}

// kubeClient builds a client from kubeconfig (or $KUBECONFIG), or from the pod's service account
// when neither is set and the process runs in a cluster. It returns nil, nil when neither is available.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = "rego-injector/" + version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// syncedNamespaces starts a namespace informer on cs and waits, up to 30 s, for its first list.
func syncedNamespaces(ctx context.Context, cs kubernetes.Interface, log *slog.Logger) (cluster.Namespaces, error) {
	live := cluster.NewLive(ctx, cs, log)
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !live.Synced() {
		select {
		case <-wait.Done():
			return nil, fmt.Errorf("namespaces: cache did not sync: %w", wait.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return live, nil
}

// offlineNamespaces is the namespace source of the offline commands: the cluster when kubeconfig is
// given (with its client), else the labels given on the command line (and a nil client).
func offlineNamespaces(ctx context.Context, kubeconfig, labels string, log *slog.Logger) (cluster.Namespaces, kubernetes.Interface, error) {
	if kubeconfig != "" {
		cs, err := kubeClient(kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		ns, err := syncedNamespaces(ctx, cs, log)
		return ns, cs, err
	}
	l, err := cluster.ParseLabels(labels)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --namespace-labels: %w", errUsage, err)
	}
	return cluster.Static{Labels: l}, nil, nil
}
