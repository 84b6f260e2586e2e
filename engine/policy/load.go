package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// ErrNoBundle is returned when no bundle source is given.
var ErrNoBundle = errors.New("no bundle given")

// maxBundleBytes bounds the size of one file read from a bundle.
const maxBundleBytes = 64 << 20

// skipTests keeps `_test.rego` files out of a served bundle (they are for `opa test`, not
// admission), and the `..data`-style entries of a Kubernetes ConfigMap or Secret volume, whose
// files also appear at the top through symlinks.
func skipTests(abspath string, info fs.FileInfo, _ int) bool {
	if strings.HasPrefix(info.Name(), "..") {
		return true
	}
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// ReadFS reads a bundle laid out as a directory in fsys (for example one compiled in with go:embed).
func ReadFS(fsys fs.FS, name string) (*bundle.Bundle, error) {
	loader, err := bundle.NewFSLoader(fsys)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	b, err := read(loader, name, nil)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	return b, nil
}

func read(loader bundle.DirectoryLoader, name string, verify *Verification) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(loader.WithFilter(skipTests)).
		WithBundleName(name).
		WithSizeLimitBytes(maxBundleBytes).
		WithBundleVerificationConfig(verify.bundleConfig()).
		WithSkipBundleVerification(verify == nil).
		Read()
	if err != nil {
		return nil, err
	}
	return &b, nil
}
