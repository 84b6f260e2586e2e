package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/reload"
	"github.com/rego-injector/rego-injector/engine/revisions"
	"github.com/rego-injector/rego-injector/engine/server"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// serveConfig is what serve runs with, filled from its flags.
type serveConfig struct {
	listen, certFile, keyFile, certDir string
	bundles                            bundleFlags
	shadow, tags                       listFlag
	watchTags                          bool
	shutdownDelay, admissionTimeout    time.Duration
	auditInterval                      time.Duration
	events                             bool
	gcPercent, memoSize                int
	maxInFlightBytes                   int64
	maxConcurrent                      int
	maxQueueWait                       time.Duration
	decisionLog, kubeconfig            string
	ownNamespace, logLevel             string
	manageCerts                        bool
	managed                            certs.Options
	webhookConfigurations, certHosts   string
	certInterval                       time.Duration
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	return runServe(ctx, cfg, stderr)
}

// parseServe fills a serveConfig from serve's flags and checks that they go together.
func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on")
	fs.StringVar(&c.certFile, "tls-cert-file", "", "serving certificate (PEM); reloaded when it changes. Absent with --tls-key-file: a self-signed certificate for localhost, for local use only")
	fs.StringVar(&c.keyFile, "tls-key-file", "", "serving key (PEM)")
	fs.StringVar(&c.certDir, "self-signed-dir", defaultCertDir(), "where the self-signed CA certificate is written")
	c.bundles.register(fs, true)
	fs.Var(&c.tags, "tag", "TAG=REVISION: a tag, when tags are not read from the cluster (repeatable)")
	fs.BoolVar(&c.watchTags, "watch-tags", true, "with a cluster, read the tags from the ConfigMap "+revisions.TagsConfigMap+" in the injector's namespace, following every change (needs get, list and watch on it)")
	fs.Var(&c.shadow, "shadow-bundle", "a candidate bundle (directory, .tar.gz or URL; repeatable) evaluated beside the live one on every admission; its answer is only compared, logged and counted, never applied")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep answering with /readyz failing for this long before closing (in a cluster, a few seconds: time for the endpoints to drop the replica)")
	fs.DurationVar(&c.admissionTimeout, "admission-timeout", 4*time.Second, "deadline for answering one admission (policy evaluation included); keep it below the webhooks' timeoutSeconds")
	fs.DurationVar(&c.auditInterval, "audit-interval", 0, "with a cluster, audit every pod against the active revision this often and export rego_injector_audit_pods{state} (needs list on pods; 0: never)")
	fs.BoolVar(&c.events, "events", true, "with a cluster, report injections, skips worth knowing about and refused overrides as Kubernetes Events on the pod's owner (or namespace)")
	fs.IntVar(&c.gcPercent, "gc-percent", 400, "the Go garbage collector's target (GOGC) when $GOGC is not set: each admission allocates a few hundred KB, and collecting less often buys ~30 % throughput for memory; set GOMEMLIMIT (the Deployment does, from the memory limit) to keep it bounded")
	fs.IntVar(&c.maxConcurrent, "max-concurrent-admissions", 0, "admissions answered at the same time, counted from when their review is read (0: two per CPU, 2 x GOMAXPROCS); the others wait their turn, in arrival order, for at most --max-queue-wait")
	fs.DurationVar(&c.maxQueueWait, "max-queue-wait", time.Second, "how long an admission may wait for its turn before it is refused with HTTP 429 (the webhooks' failurePolicy applies); keep it well under the webhooks' timeoutSeconds")
	fs.Int64Var(&c.maxInFlightBytes, "max-inflight-bytes", 1<<20, "bytes of admission review bodies answered at once; past it a review is refused with HTTP 429 at once (the webhooks' failurePolicy applies) instead of growing the heap: an admission holds 80-200 times its body while answered. 0: no bound")
	fs.IntVar(&c.memoSize, "memo-size", 256, "answers to distinct pods remembered per bundle revision, reused when the same pod comes again (replicas of one workload); 0 turns it off, as does --shadow-bundle")
	fs.StringVar(&c.decisionLog, "decision-log", "", "write one JSON line per admission decision to stdout, stderr or this file (absent: no decision log)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for namespace labels (absent: in-cluster config when running in a pod, else no cluster)")
	fs.StringVar(&c.ownNamespace, "injector-namespace", os.Getenv("POD_NAMESPACE"), "the injector's own namespace, never injected (default $POD_NAMESPACE)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.manageCerts, "manage-certs", false, "keep the serving certificate in a Secret of the injector's namespace: make it, renew it, and keep the webhooks' caBundle patched (needs a cluster)")
	fs.StringVar(&c.managed.Service, "cert-service", "rego-injector", "with --manage-certs: the Service whose names the certificate covers")
	fs.StringVar(&c.managed.Secret, "cert-secret", "rego-injector-tls", "with --manage-certs: the TLS Secret holding the CA and serving certificate")
	fs.StringVar(&c.webhookConfigurations, "webhook-configurations", "rego-injector", "with --manage-certs: comma-separated webhook configurations whose caBundle to keep patched")
	fs.StringVar(&c.certHosts, "cert-hosts", "", "with --manage-certs: further comma-separated names or IPs the certificate covers")
	fs.DurationVar(&c.managed.Validity, "cert-validity", 365*24*time.Hour, "with --manage-certs: validity of a serving certificate")
	fs.DurationVar(&c.managed.RenewBefore, "cert-renew-before", 30*24*time.Hour, "with --manage-certs: renew when the certificate expires within this margin")
	fs.DurationVar(&c.certInterval, "cert-check-interval", time.Minute, "with --manage-certs: how often to check the Secret and the caBundle")
	if err := parse(fs, args, stderr); err != nil {
		return nil, err
	}
	c.managed.Namespace = c.ownNamespace
	c.managed.WebhookConfigurations = splitList(c.webhookConfigurations)
	c.managed.ExtraHosts = splitList(c.certHosts)
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, fmt.Errorf("%w: --tls-cert-file and --tls-key-file go together", errUsage)
	}
	if c.manageCerts && (c.certFile != "" || c.managed.Namespace == "") {
		return nil, fmt.Errorf("%w: --manage-certs needs --injector-namespace (or $POD_NAMESPACE) and no --tls-cert-file", errUsage)
	}
	return &c, nil
}

// runServe wires the webhook server of c together and serves until ctx is done.
func runServe(ctx context.Context, c *serveConfig, stderr io.Writer) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(c.gcPercent)
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	var namespaces cluster.Namespaces = cluster.Static{}
	cs, err := kubeClient(c.kubeconfig)
	if err != nil {
		return err
	}
	if cs != nil {
		namespaces = cluster.NewLive(ctx, cs, log)
	} else {
		log.Warn("no cluster: namespaces have no labels; give --kubeconfig to read them")
	}
	if c.manageCerts && cs == nil {
		return fmt.Errorf("%w: --manage-certs needs a cluster: give --kubeconfig or run in a pod", errUsage)
	}

	m := metrics.New(metrics.WithLogger(log))
	hooks := []webhook.Option{webhook.WithLogger(log), webhook.WithMetrics(m), webhook.WithTimeout(c.admissionTimeout)}
	memoSize := c.memoSize
	var shadowStatus func() reload.Status
	if len(c.shadow) > 0 {
		sh := injector.New(namespaces, injector.WithLogger(log), injector.WithOwnNamespace(c.ownNamespace))
		if shadowStatus, err = c.bundles.serveBundles(ctx, "shadow", c.shadow, sh, m, log); err != nil {
			return fmt.Errorf("shadow bundle: %w", err)
		}
		hooks = append(hooks, webhook.WithShadow(sh))
		memoSize = 0 // the comparison needs every live pod
	}
	if cs != nil && c.events {
		host, _ := os.Hostname()
		rec := events.New(cs, "rego-injector", host, log)
		defer rec.Close()
		hooks = append(hooks, webhook.WithEvents(rec))
	}
	if c.decisionLog != "" {
		w, closeLog, err := openLog(c.decisionLog, stderr)
		if err != nil {
			return err
		}
		defer closeLog()
		hooks = append(hooks, webhook.WithDecisionLog(w))
	}
	set, bundleStatus, failed, err := c.serveRevisions(ctx, cs, namespaces, memoSize, m, log)
	if err != nil {
		return err
	}
	if cs != nil && c.auditInterval > 0 {
		go audit.Periodically(ctx, c.auditInterval, cs, set, m, log)
	}
	getCert, err := c.certificates(ctx, cs, log, stderr)
	if err != nil {
		return err
	}
	m.ServingCertificate(getCert)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hooked := webhook.New(set, hooks...)
	return server.Serve(ctx, ln, server.Config{
		Mutating:         hooked.Mutating(),
		Validating:       hooked.Validating(),
		Metrics:          m,
		Certificates:     getCert,
		ShutdownDelay:    c.shutdownDelay,
		MaxInFlightBytes: c.maxInFlightBytes,
		MaxConcurrent:    c.maxConcurrent,
		MaxQueueWait:     c.maxQueueWait,
		Log:              log,
		Ready: func() (bool, map[string]any) {
			details := map[string]any{"revision": set.Revision(), "namespacesSynced": namespaces.Synced(), "bundle": bundleStatus()}
			for k, v := range set.Status() {
				details[k] = v
			}
			if shadowStatus != nil {
				details["shadowBundle"] = shadowStatus()
			}
			return set.Ready(failed), details
		},
	})
}

// serveRevisions serves each revision the --bundle flags name from its own sources, each with its
// own reloader, memo and metrics label, behind the router; the tags come from the cluster (or
// --tag). It returns the set, a function reporting each revision's reloader, and one telling
// whether a revision's source failed before it delivered any bundle.
func (c *serveConfig) serveRevisions(ctx context.Context, cs kubernetes.Interface, namespaces cluster.Namespaces, memoSize int, m *metrics.Metrics, log *slog.Logger) (*revisions.Set, func() any, func(string) bool, error) {
	named, err := c.bundles.named()
	if err != nil {
		return nil, nil, nil, err
	}
	var tags revisions.Tags
	switch {
	case cs != nil && c.watchTags && len(c.tags) > 0:
		return nil, nil, nil, fmt.Errorf("%w: --tag is for serving without the cluster's tags: give --watch-tags=false", errUsage)
	case cs != nil && c.watchTags:
		if c.ownNamespace == "" {
			return nil, nil, nil, fmt.Errorf("%w: reading the tags needs --injector-namespace (or $POD_NAMESPACE), or --watch-tags=false", errUsage)
		}
		tags = revisions.WatchTags(ctx, cs, c.ownNamespace, log)
	default:
		if tags, err = parseTags(c.tags); err != nil {
			return nil, nil, nil, err
		}
	}
	revs := map[string]*injector.Injector{}
	statuses := map[string]func() reload.Status{}
	for name, specs := range named {
		inj := injector.New(namespaces, injector.WithLogger(log.With("rev", name)), injector.WithMetrics(m), injector.WithOwnNamespace(c.ownNamespace), injector.WithMemo(memoSize))
		if statuses[name], err = c.bundles.serveBundles(ctx, name, specs, inj, m, log); err != nil {
			return nil, nil, nil, fmt.Errorf("revision %s: %w", name, err)
		}
		revs[name] = inj
	}
	r, err := router(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	failed := func(name string) bool {
		st := statuses[name]()
		return len(statuses) > 1 && st.Activations == 0 && st.LastError != ""
	}
	status := func() any {
		if len(statuses) == 1 && statuses[revisions.DefaultRevision] != nil {
			return statuses[revisions.DefaultRevision]()
		}
		out := make(map[string]reload.Status, len(statuses))
		for name, st := range statuses {
			out[name] = st()
		}
		return out
	}
	set, err := revisions.NewSet(r, revs, tags, namespaces)
	if err != nil {
		return nil, nil, nil, err
	}
	return set, status, failed, nil
}

// certificates is where the serving certificate comes from: the managed Secret, the files given,
// or a self-signed certificate for local use.
func (c *serveConfig) certificates(ctx context.Context, cs kubernetes.Interface, log *slog.Logger, stderr io.Writer) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	switch {
	case c.manageCerts:
		m := certs.NewManager(cs, c.managed, c.certInterval, log)
		if err := m.Start(ctx); err != nil {
			return nil, err
		}
		return m.GetCertificate, nil
	case c.certFile != "":
		fc, err := server.LoadFileCertificate(c.certFile, c.keyFile, log)
		if err != nil {
			return nil, err
		}
		return fc.GetCertificate, nil
	}
	host, _, _ := net.SplitHostPort(c.listen)
	ss, err := server.NewSelfSigned(host)
	if err != nil {
		return nil, err
	}
	caPath, err := ss.WriteCA(c.certDir)
	if err != nil {
		return nil, err
	}
	log.Warn("serving with a self-signed certificate for localhost, for local use only", "ca", caPath)
	fmt.Fprintf(stderr, "self-signed CA certificate written to %s (curl --cacert %s ...)\n", caPath, caPath)
	return ss.GetCertificate, nil
}

func defaultCertDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "rego-injector", "self-signed")
}

// openLog opens a decision log destination: stdout, stderr or a file appended to.
func openLog(dest string, stderr io.Writer) (io.Writer, func(), error) {
	switch dest {
	case "stdout":
		return os.Stdout, func() {}, nil
	case "stderr":
		return stderr, func() {}, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("decision log: %w", err)
	}
	return f, func() { f.Close() }, nil
}
