// Command rego-injector is a Kubernetes admission webhook that injects sidecars into pods as Rego
// policy decides, and its offline companion commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `rego-injector: sidecar injection decided by Rego policy.

Usage:
  rego-injector serve   [flags]           run the mutating and validating webhooks over HTTPS
  rego-injector inject  -f FILE|- [flags] inject the workloads of a manifest, YAML to stdout
  rego-injector explain -f FILE|- [flags] say, per workload, whether and why it would be injected
  rego-injector check   -f PATH [flags]   inject, then validate, every workload of manifests, for CI:
                                          text, JSON or JUnit XML; exit 1 when policy refuses one
  rego-injector audit   [flags]           list the cluster's pods that disagree with policy now: no sidecar
                                          where one belongs, one too many, an older revision or variant
  rego-injector rollout --revision R [flags]
                                          restart the workloads whose pods audit finds out of date for
                                          revision R, one at a time, each once the last is ready;
                                          a dry run unless --confirm
  rego-injector certs   [flags]           make the webhook's CA and serving certificate: a TLS Secret,
                                          the caBundle of the webhook configurations (revisions' and
                                          tags' too); --revisions writes revisions' configurations
  rego-injector tag set|list|remove|generate TAG [flags]
                                          point tags at revisions: the tags ConfigMap and the tag's
                                          webhook configuration
  rego-injector precheck [flags]          find webhook entries (ours, Istio's) that one pod reaches
                                          together, with a witness; exit 1 when there is one
  rego-injector version                   print the version

Run "rego-injector COMMAND -h" for a command's flags. Every flag can also be set from the
environment as REGO_INJECTOR_<FLAG>, e.g. REGO_INJECTOR_LISTEN=0.0.0.0:8443.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a command and turns its error into an exit code: 2 for usage errors, 1 otherwise.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "inject":
		err = injectCmd(ctx, args[1:], stdin, stdout, stderr)
	case "explain":
		err = explainCmd(ctx, args[1:], stdin, stdout, stderr)
	case "check":
		err = checkCmd(ctx, args[1:], stdin, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr)
	case "rollout":
		err = rolloutCmd(ctx, args[1:], stdout, stderr)
	case "precheck":
		err = precheckCmd(ctx, args[1:], stdout, stderr)
	case "tag":
		err = tagCmd(ctx, args[1:], stdout, stderr)
	case "certs":
		err = certsCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "rego-injector", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errDenied):
		fmt.Fprintln(stderr, "rego-injector check:", err)
		return 1
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "rego-injector:", err)
		return 1
	}
}
