// Package bundletree writes the default bundle as a directory tree, the way an operator would
// serve it from a volume, for the end-to-end tests and the load harness.
package bundletree

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Write writes into dir the default bundle of the repository at root: the tree of
// bundles/default, the policies without their tests and without the selection policy of
// policies/revisions (which the engine evaluates before any bundle, so no bundle carries it), and a
// manifest of revision rev with root injector. edit, when not nil, changes the bundle's settings
// (data.injector.config) first.
func Write(root, dir, rev string, edit func(config map[string]any)) error {
	if err := write(root, dir, rev, edit); err != nil {
		return fmt.Errorf("write bundle %s: %w", rev, err)
	}
	return nil
}

func write(root, dir, rev string, edit func(config map[string]any)) error {
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "bundles", "default"))); err != nil {
		return err
	}
	policies := filepath.Join(root, "policies")
	err := filepath.WalkDir(policies, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "revisions" {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		rel, _ := filepath.Rel(policies, path)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), src, 0o644)
	})
	if err != nil {
		return err
	}
	if edit != nil {
		path := filepath.Join(dir, "injector", "config", "data.yaml")
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var config map[string]any
		if err := yaml.Unmarshal(raw, &config); err != nil {
			return err
		}
		edit(config)
		if raw, err = yaml.Marshal(config); err != nil {
			return err
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			return err
		}
	}
	manifest := fmt.Appendf(nil, `{"revision": %q, "roots": ["injector"]}`, rev)
	return os.WriteFile(filepath.Join(dir, ".manifest"), manifest, 0o644)
}
