package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ErrLayout is returned for a tarball that is not an OCI layout of exactly one image index.
var ErrLayout = errors.New("not an OCI layout of one image index")

// refAnnotations name the image in the layout's index.json as docker buildx does: the tag for
// skopeo and the OCI tools, the full name for docker load and containerd.
func refAnnotations(ref string) (map[string]string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", ref, err)
	}
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr(),
	}, nil
}

// writeLayout writes idx as the one image of an OCI image layout
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md), named ref, as a tarball
// to w: entries sorted, every time stamp mtime, owned by root, no extended headers.
func writeLayout(w io.Writer, idx v1.ImageIndex, ref string, mtime time.Time) error {
	anns, err := refAnnotations(ref)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rego-injector-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	top := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: idx, Descriptor: v1.Descriptor{Annotations: anns}})
	if _, err := layout.Write(dir, top); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	tw := tar.NewWriter(w)
	// WalkDir visits a directory's entries in lexical order.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatUSTAR}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("tar OCI layout: %w", err)
	}
	return tw.Close()
}

// readLayout unpacks an OCI layout tarball into dir and returns the one image index it holds, with
// the index.json descriptor that names it.
func readLayout(tarball, dir string) (v1.ImageIndex, v1.Descriptor, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", tarball, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) {
			return nil, v1.Descriptor{}, fmt.Errorf("%s: entry %q: %w", tarball, h.Name, ErrLayout)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			err = writeFile(target, tr)
		default:
			err = fmt.Errorf("entry %q of type %c: %w", h.Name, h.Typeflag, ErrLayout)
		}
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", tarball, err)
		}
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", tarball, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", tarball, err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: %d entries in index.json: %w", tarball, len(m.Manifests), ErrLayout)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s: %w", tarball, err)
	}
	return idx, m.Manifests[0], nil
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
