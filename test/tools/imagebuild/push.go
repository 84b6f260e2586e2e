package main

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push uploads the image index of an OCI layout tarball, with every image and SBOM in it, to ref,
// with the credentials docker login, podman login or crane auth login stored. go-containerregistry
// speaks plain HTTP to a registry on localhost, a loopback or private (RFC 1918) address or a .local
// name, and to others only when insecure. It returns the index's digest, which the registry keeps:
// the same as in the tarball.
func push(ctx context.Context, tarball, ref string, insecure bool) (v1.Hash, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	dst, err := name.ParseReference(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	dir, err := os.MkdirTemp("", "rego-injector-push-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	idx, desc, err := readLayout(tarball, dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(dst, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", dst, err)
	}
	return desc.Digest, nil
}
