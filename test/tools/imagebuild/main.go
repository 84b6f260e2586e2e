// Command imagebuild writes rego-injector's container image as an OCI layout tarball, and pushes one.
//
// The image is built from the binaries alone, without a base image and without a container engine:
// an image index with one image per platform (a base layer with the files of distroless/static a
// static binary uses, and a layer with the binary and its SBOM), and per image an SPDX SBOM
// manifest that refers to it. The Makefile's image and image-push targets run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const usage = `imagebuild: rego-injector's container image, built without a container engine.

Usage:
  imagebuild build -o FILE -name NAME:TAG -version V -revision SHA -source URL [-created UNIX]
                   -binary OS/ARCH=PATH [-binary OS/ARCH=PATH ...]
  imagebuild push  [-insecure] FILE REGISTRY/REPOSITORY:TAG
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
	var err error
	switch {
	case len(args) > 0 && args[0] == "build":
		err = buildCmd(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "push":
		err = pushCmd(ctx, args[1:], stdout, stderr)
	default:
		err = errUsage
	}
	switch {
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "imagebuild:", err)
		return 1
	}
	return 0
}

// binaryFlags collects -binary OS/ARCH=PATH flags.
type binaryFlags []binary

func (p *binaryFlags) String() string { return fmt.Sprint(*p) }

func (p *binaryFlags) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return fmt.Errorf("want OS/ARCH=PATH, got %q", s)
	}
	pl, err := v1.ParsePlatform(platform)
	if err != nil {
		return err
	}
	*p = append(*p, binary{Platform: *pl, Path: path})
	return nil
}

func buildCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s spec
	var bins binaryFlags
	out := fs.String("o", "", "the OCI layout tarball to write")
	ref := fs.String("name", "", "the image's name in the tarball, NAME:TAG")
	created := fs.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "every time stamp in the image, in seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	fs.StringVar(&s.Version, "version", "", "the version of the binaries")
	fs.StringVar(&s.Revision, "revision", "", "the commit they were built from")
	fs.StringVar(&s.Source, "source", "", "the URL of the repository")
	fs.Var(&bins, "binary", "OS/ARCH=PATH: a binary and its platform (repeat for each platform)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *ref == "" || s.Version == "" || s.Revision == "" || s.Source == "" || len(bins) == 0 || fs.NArg() > 0 {
		return errUsage
	}
	sec, err := strconv.ParseInt(*created, 10, 64)
	if err != nil {
		return fmt.Errorf("-created or SOURCE_DATE_EPOCH: want seconds since 1970, got %q", *created)
	}
	s.Created, s.Binaries = time.Unix(sec, 0).UTC(), bins
	return build(s, *out, *ref, stdout)
}

// build writes the image of s to out, named ref, and says what it wrote.
func build(s spec, out, ref string, stdout io.Writer) error {
	idx, err := buildIndex(s)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := writeLayout(f, idx, ref, s.Created); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s, index %s\n", out, ref, digest)
	for _, d := range m.Manifests {
		what := "image " + d.Platform.String()
		if d.ArtifactType != "" {
			what = "SBOM " + d.ArtifactType
		}
		fmt.Fprintf(stdout, "  %-28s %s\n", what, d.Digest)
	}
	return nil
}

func pushCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	insecure := fs.Bool("insecure", false, "allow plain HTTP and unverified TLS to the registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errUsage
	}
	digest, err := push(ctx, fs.Arg(0), fs.Arg(1), *insecure)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s@%s\n", fs.Arg(1), digest)
	return nil
}
