package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/metrics"
	"github.com/rego-injector/rego-injector/engine/reload"
	"github.com/rego-injector/rego-injector/engine/server"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	certFile := fs.String("tls-cert-file", "", "serving certificate (PEM); reloaded when it changes. Absent with --tls-key-file: a self-signed certificate for localhost, for local use only")
	keyFile := fs.String("tls-key-file", "", "serving key (PEM)")
	certDir := fs.String("self-signed-dir", defaultCertDir(), "where the self-signed CA certificate is written")
	var bf bundleFlags
	bf.register(fs, true)
	var shadow listFlag
	fs.Var(&shadow, "shadow-bundle", "a candidate bundle (directory, .tar.gz or URL; repeatable) evaluated beside the live one on every admission; its answer is only compared, logged and counted, never applied")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "on SIGTERM, keep answering with /readyz failing for this long before closing (in a cluster, a few seconds: time for the endpoints to drop the replica)")
	evalTimeout := fs.Duration("admission-timeout", 4*time.Second, "deadline for answering one admission (policy evaluation included); keep it below the webhooks' timeoutSeconds")
	auditEvery := fs.Duration("audit-interval", 0, "with a cluster, audit every pod against the active revision this often and export rego_injector_audit_pods{state} (needs list on pods; 0: never)")
	emitEvents := fs.Bool("events", true, "with a cluster, report injections, skips worth knowing about and refused overrides as Kubernetes Events on the pod's owner (or namespace)")
	gcPercent := fs.Int("gc-percent", 400, "the Go garbage collector's target (GOGC) when $GOGC is not set: each admission allocates a few hundred KB, and collecting less often buys ~30 % throughput for memory; set GOMEMLIMIT (the Deployment does, from the memory limit) to keep it bounded")
	memoSize := fs.Int("memo-size", 256, "answers to distinct pods remembered per bundle revision, reused when the same pod comes again (replicas of one workload); 0 turns it off")
	decisionLog := fs.String("decision-log", "", "write one JSON line per admission decision to stdout, stderr or this file (absent: no decision log)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for namespace labels (absent: in-cluster config when running in a pod, else no cluster)")
	ownNamespace := fs.String("injector-namespace", os.Getenv("POD_NAMESPACE"), "the injector's own namespace, never injected (default $POD_NAMESPACE)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	manage := fs.Bool("manage-certs", false, "keep the serving certificate in a Secret of the injector's namespace: make it, renew it, and keep the webhooks' caBundle patched (needs a cluster)")
	var managed certs.Options
	fs.StringVar(&managed.Service, "cert-service", "rego-injector", "with --manage-certs: the Service whose names the certificate covers")
	fs.StringVar(&managed.Secret, "cert-secret", "rego-injector-tls", "with --manage-certs: the TLS Secret holding the CA and serving certificate")
	webhookConfigs := fs.String("webhook-configurations", "rego-injector", "with --manage-certs: comma-separated webhook configurations whose caBundle to keep patched")
	certHosts := fs.String("cert-hosts", "", "with --manage-certs: further comma-separated names or IPs the certificate covers")
	fs.DurationVar(&managed.Validity, "cert-validity", 365*24*time.Hour, "with --manage-certs: validity of a serving certificate")
	fs.DurationVar(&managed.RenewBefore, "cert-renew-before", 30*24*time.Hour, "with --manage-certs: renew when the certificate expires within this margin")
	certInterval := fs.Duration("cert-check-interval", time.Minute, "with --manage-certs: how often to check the Secret and the caBundle")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(*gcPercent)
	}
	managed.Namespace = *ownNamespace
	managed.WebhookConfigurations = splitList(*webhookConfigs)
	managed.ExtraHosts = splitList(*certHosts)
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if (*certFile == "") != (*keyFile == "") {
		return fmt.Errorf("%w: --tls-cert-file and --tls-key-file go together", errUsage)
	}
	if *manage && (*certFile != "" || managed.Namespace == "") {
		return fmt.Errorf("%w: --manage-certs needs --injector-namespace (or $POD_NAMESPACE) and no --tls-cert-file", errUsage)
	}

	var namespaces cluster.Namespaces = cluster.Static{}
	cs, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	if cs != nil {
		namespaces = cluster.NewLive(ctx, cs, log)
	} else {
		log.Warn("no cluster: namespaces have no labels; give --kubeconfig to read them")
	}

	m := metrics.New(metrics.WithLogger(log))
	opts := []injector.Option{injector.WithLogger(log), injector.WithMetrics(m), injector.WithOwnNamespace(*ownNamespace), injector.WithTimeout(*evalTimeout), injector.WithMemo(*memoSize)}
	var shadowStatus func() reload.Status
	if len(shadow) > 0 {
		sh := injector.New(namespaces, injector.WithLogger(log), injector.WithOwnNamespace(*ownNamespace))
		if shadowStatus, err = bf.serveBundles(ctx, "shadow", shadow, sh, m, log); err != nil {
			return fmt.Errorf("shadow bundle: %w", err)
		}
		opts = append(opts, injector.WithShadow(sh))
	}
	if cs != nil && *emitEvents {
		host, _ := os.Hostname()
		rec := events.New(cs, "rego-injector", host, log)
		defer rec.Close()
		opts = append(opts, injector.WithEvents(rec))
	}
	if *decisionLog != "" {
		w, closeLog, err := openLog(*decisionLog, stderr)
		if err != nil {
			return err
		}
		defer closeLog()
		opts = append(opts, injector.WithDecisionLog(w))
	}
	inj := injector.New(namespaces, opts...)
	liveStatus, err := bf.serveBundles(ctx, "live", bf.sources, inj, m, log)
	if err != nil {
		return err
	}
	if cs != nil && *auditEvery > 0 {
		go audit.Periodically(ctx, *auditEvery, cs, inj, m, log)
	}

	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	switch {
	case *manage:
		if cs == nil {
			return fmt.Errorf("%w: --manage-certs needs a cluster: give --kubeconfig or run in a pod", errUsage)
		}
		m := certs.NewManager(cs, managed, *certInterval, log)
		if err := m.Start(ctx); err != nil {
			return err
		}
		getCert = m.GetCertificate
	case *certFile != "":
		fc, err := server.LoadFileCertificate(*certFile, *keyFile, log)
		if err != nil {
			return err
		}
		getCert = fc.GetCertificate
	default:
		host, _, _ := net.SplitHostPort(*listen)
		ss, err := server.NewSelfSigned(host)
		if err != nil {
			return err
		}
		caPath, err := ss.WriteCA(*certDir)
		if err != nil {
			return err
		}
		log.Warn("serving with a self-signed certificate for localhost, for local use only", "ca", caPath)
		fmt.Fprintf(stderr, "self-signed CA certificate written to %s (curl --cacert %s ...)\n", caPath, caPath)
		getCert = ss.GetCertificate
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return server.Serve(ctx, ln, server.Config{
		Mutating:      inj.Mutating(),
		Validating:    inj.Validating(),
		Metrics:       m,
		Certificates:  getCert,
		ShutdownDelay: *shutdownDelay,
		Log:           log,
		Ready: func() (bool, map[string]any) {
			details := map[string]any{"revision": inj.Revision(), "namespacesSynced": namespaces.Synced(), "bundle": liveStatus()}
			if shadowStatus != nil {
				details["shadowBundle"] = shadowStatus()
			}
			return inj.Ready(), details
		},
	})
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
