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

// skipVolumeEntries keeps out of a bundle the `..data`-style entries of a Kubernetes ConfigMap or
// Secret volume, whose files also appear at the top through symlinks.
func skipVolumeEntries(_ string, info fs.FileInfo, _ int) bool {
	return strings.HasPrefix(info.Name(), "..")
}

// skipTests also keeps `_test.rego` files out, unread: they are for `opa test`, not admission (and
// Compile would drop them anyway).
func skipTests(abspath string, info fs.FileInfo, depth int) bool {
	if skipVolumeEntries(abspath, info, depth) {
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

// read reads a bundle from loader. A bundle that is verified is read whole, its `_test.rego` files
// included: `opa build` signs them along with the rest, and a signature over a file the reader never
// read fails verification. Compile leaves them out of the served policy.
func read(loader bundle.DirectoryLoader, name string, verify *Verification) (*bundle.Bundle, error) {
	filter := skipTests
	if verify != nil {
		filter = skipVolumeEntries
	}
	b, err := bundle.NewCustomReader(loader.WithFilter(filter)).
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
