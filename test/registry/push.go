package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Push publishes a bundle (the bytes of a .tar.gz that opa build wrote) at ref
// (host[:port]/repository:tag) as OPA's OCI downloader reads it, and as `oras push` writes it: an
// OCI image manifest with an OCI image configuration and one layer of type
// application/vnd.oci.image.layer.v1.tar+gzip, the bundle byte for byte. The same bundle makes the
// same layer and manifest digests, whenever it is pushed. Credentials are those that docker login,
// podman login or crane auth login stored. go-containerregistry speaks plain HTTP to a registry on
// localhost, a loopback or private address or a .local name, and to others only when plainHTTP.
// Push returns the manifest's digest.
func Push(ctx context.Context, ref string, bundle []byte, plainHTTP bool) (string, error) {
	var opts []name.Option
	if plainHTTP {
		opts = append(opts, name.Insecure)
	}
	dst, err := name.ParseReference(ref, append(opts, name.StrictValidation)...)
	if err != nil {
		return "", fmt.Errorf("bundle reference %q: %w", ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(bundle)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", fmt.Errorf("bundle layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{"org.opencontainers.image.title": "bundle.tar.gz"},
	})
	if err != nil {
		return "", fmt.Errorf("bundle image: %w", err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", dst, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push %s: %w", dst, err)
	}
	return digest.String(), nil
}
