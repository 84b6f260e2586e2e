package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// spec is what goes into the image; the same spec and binaries give the same bytes.
type spec struct {
	Version  string    // of the binaries: the tag and the version label
	Revision string    // the commit built
	Source   string    // the repository's URL
	Created  time.Time // every time stamp in the image: the commit's time, for reproducible builds
	Binaries []binary  // one image per binary, in this order
}

// binary is a rego-injector binary built for a platform.
type binary struct {
	Platform v1.Platform
	Path     string
}

// unknownPlatform marks the SBOM manifests of the index, as BuildKit marks its attestations, so that
// a runtime choosing an image for its platform never picks one.
var unknownPlatform = v1.Platform{OS: "unknown", Architecture: "unknown"}

// ErrPlatform is returned for a binary built for another platform than the one it is given for.
var ErrPlatform = errors.New("binary built for another platform")

// annotations are the image's OCI annotations
// (https://github.com/opencontainers/image-spec/blob/main/annotations.md), on the index and every
// image manifest, and as labels in every image configuration.
func (s spec) annotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "rego-injector",
		"org.opencontainers.image.description": "Kubernetes admission webhook that injects sidecars as Rego policy decides",
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.url":         s.Source,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
}

// buildIndex makes the image index: one image per binary, then one SBOM manifest per image, each
// with the image as its subject (an OCI 1.1 referrer).
func buildIndex(s spec) (v1.ImageIndex, error) {
	if len(s.Binaries) == 0 {
		return nil, errors.New("no binaries")
	}
	base, err := layer(baseEntries(), s.Created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	var images, sboms []mutate.IndexAddendum
	for _, b := range s.Binaries {
		img, doc, err := platformImage(s, base, b)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", b.Platform, err)
		}
		images = append(images, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &b.Platform}})
		art, err := sbomManifest(s, doc, img)
		if err != nil {
			return nil, fmt.Errorf("SBOM of %s: %w", b.Platform, err)
		}
		sboms = append(sboms, mutate.IndexAddendum{Add: art, Descriptor: v1.Descriptor{
			Platform:     &unknownPlatform,
			ArtifactType: spdxMediaType,
		}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, append(images, sboms...)...)
	return mutate.Annotations(idx, s.annotations()).(v1.ImageIndex), nil
}

// platformImage is the image of one binary: the base layer, then the binary and its SBOM. It returns
// the SBOM too.
func platformImage(s spec, base v1.Layer, b binary) (v1.Image, []byte, error) {
	bin, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, nil, err
	}
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", b.Path, err)
	}
	if goos, goarch := setting(info, "GOOS"), setting(info, "GOARCH"); goos != b.Platform.OS || goarch != b.Platform.Architecture {
		return nil, nil, fmt.Errorf("%s is for %s/%s: %w", b.Path, goos, goarch, ErrPlatform)
	}
	doc, err := sbom(bin, s.Version, s.Source, s.Created)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", b.Path, err)
	}
	top, err := layer(binaryEntries(bin, doc), s.Created)
	if err != nil {
		return nil, nil, fmt.Errorf("binary layer: %w", err)
	}
	created := v1.Time{Time: s.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: b.Platform.Architecture,
		OS:           b.Platform.OS,
		Variant:      b.Platform.Variant,
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{binaryPath},
			Cmd:        []string{"serve"},
			User:       user,
			WorkingDir: "/",
			Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			Labels:     s.annotations(),
		},
	})
	if err != nil {
		return nil, nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created:   created,
			CreatedBy: "rego-injector imagebuild: /etc/passwd, /etc/group, /etc/nsswitch.conf, /home/nonroot, /root, /tmp",
			Comment:   "the files of distroless/static a static binary uses, CA certificates aside",
		}},
		mutate.Addendum{Layer: top, MediaType: types.OCILayer, History: v1.History{
			Created:   created,
			CreatedBy: fmt.Sprintf("rego-injector imagebuild: %s, %s", binaryPath, sbomPath),
			Comment:   fmt.Sprintf("rego-injector %s for %s", s.Version, b.Platform),
		}},
	)
	if err != nil {
		return nil, nil, err
	}
	return mutate.Annotations(img, s.annotations()).(v1.Image), doc, nil
}

// plainImage is an image whose descriptor in the index has no artifactType, as docker writes it,
// rather than the one go-containerregistry derives from the configuration's media type.
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// emptyJSON is the configuration of an artifact that has none.
var emptyJSON = []byte("{}")

// artifact is an OCI artifact manifest of one blob, the SBOM, whose subject is the image it
// describes.
type artifact struct {
	manifest []byte
	blob     v1.Layer
}

func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyJSON, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.blob.Digest(); err != nil || d != h {
		return nil, fmt.Errorf("artifact has no blob %s", h)
	}
	return a.blob, nil
}

// sbomManifest makes the SBOM's artifact manifest with img as its subject.
func sbomManifest(s spec, doc []byte, img v1.Image) (v1.Image, error) {
	subject, err := partial.Descriptor(img)
	if err != nil {
		return nil, err
	}
	blob := static.NewLayer(doc, spdxMediaType)
	blobDesc, err := partial.Descriptor(blob)
	if err != nil {
		return nil, err
	}
	blobDesc.Annotations = map[string]string{"org.opencontainers.image.title": "sbom.spdx.json"}
	config, _, err := v1.SHA256(bytes.NewReader(emptyJSON))
	if err != nil {
		return nil, err
	}
	m, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  spdxMediaType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: int64(len(emptyJSON)), Digest: config},
		Layers:        []v1.Descriptor{*blobDesc},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
		Annotations:   map[string]string{"org.opencontainers.image.created": s.Created.UTC().Format(time.RFC3339)},
	})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: m, blob: blob})
}
