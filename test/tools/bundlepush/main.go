// Command bundlepush publishes an OPA bundle to an OCI registry, where `rego-injector serve
// --bundle oci://...` (and OPA) download it. The Makefile's bundle-push target runs it.
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

	"github.com/rego-injector/rego-injector/test/registry"
)

const usage = `bundlepush: publish an OPA bundle to an OCI registry.

Usage:
  bundlepush [-plain-http] BUNDLE.tar.gz REGISTRY/REPOSITORY:TAG
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage is returned for a command line that cannot be run.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := push(ctx, args, stdout)
	switch {
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "bundlepush:", err)
		return 1
	}
	return 0
}

func push(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bundlepush", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	plainHTTP := fs.Bool("plain-http", false, "speak plain HTTP to the registry (it is spoken anyway to localhost, loopback and private addresses)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errUsage
	}
	file, ref := fs.Arg(0), fs.Arg(1)
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	digest, err := registry.Push(ctx, ref, b, *plainHTTP)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s to %s@%s\n", file, ref, digest)
	return nil
}
