// Package regoinjector carries the default bundle (the policies, templates and values under policies/
// and bundles/default) compiled into the binary.
package regoinjector

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/rego-injector/rego-injector/engine/policy"
)

//go:embed all:bundles/default policies
var files embed.FS

// SelectionPolicyPath is where the revision selection policy is kept, beside the bundle's policies.
const SelectionPolicyPath = "policies/revisions/selection.rego"

// SelectionPolicy is the revision selection policy (see engine/revisions), which the engine
// evaluates before any bundle.
func SelectionPolicy() (name string, module []byte, err error) {
	module, err = files.ReadFile(SelectionPolicyPath)
	if err != nil {
		return "", nil, fmt.Errorf("embedded selection policy: %w", err)
	}
	return SelectionPolicyPath, module, nil
}

// DefaultBundle reads the embedded default bundle: the manifest, data and templates of
// bundles/default and the Rego under policies/, tests and the selection policy left out. `make bundle` builds the same files
// into build/default.tar.gz.
func DefaultBundle() (*bundle.Bundle, error) {
	sub, err := fs.Sub(files, "bundles/default")
	if err != nil {
		return nil, fmt.Errorf("embedded bundle: %w", err)
	}
	b, err := policy.ReadFS(sub, "embedded:default")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(files, "policies", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		if path.Dir(p) == path.Dir(SelectionPolicyPath) {
			return nil // evaluated by the engine before any bundle, not part of one
		}
		raw, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		parsed, err := ast.ParseModuleWithOpts(p, string(raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: p, Path: p, Raw: raw, Parsed: parsed})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded bundle: %w", err)
	}
	return b, nil
}
