package policy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// ociRef is a bundle in an OCI registry: oci://host[:port]/repository:tag (or @sha256:...), or
// oci+http:// for a registry that speaks plain HTTP.
type ociRef struct {
	registry  string // host[:port]
	ref       string // registry/repository:tag or registry/repository@digest, as OPA's downloader takes it
	plainHTTP bool
}

// parseOCI reads the part of an oci:// or oci+http:// source after the scheme.
func parseOCI(spec, scheme, rest string) (*ociRef, error) {
	host, repo, found := strings.Cut(rest, "/")
	if !found || repo == "" {
		return nil, fmt.Errorf("bundle reference %q: want %s://host[:port]/repository:tag or @sha256:digest", spec, scheme)
	}
	u, err := url.Parse("//" + host)
	switch {
	case err == nil && u.User != nil:
		return nil, fmt.Errorf("bundle reference %q: user information is not supported: credentials come from the Docker configuration", scheme+":"+u.Redacted()+"/"+repo)
	case err != nil || u.Hostname() == "" || u.Host != host:
		return nil, fmt.Errorf("bundle reference %q: %q is not a registry host[:port]", spec, host)
	}
	if err := checkRepository(repo); err != nil {
		return nil, fmt.Errorf("bundle reference %q: %w", spec, err)
	}
	return &ociRef{registry: host, ref: host + "/" + repo, plainHTTP: scheme == "oci+http"}, nil
}

// checkRepository checks repository:tag, repository@digest or repository:tag@digest against the
// distribution grammar. (The registry is checked apart: go-containerregistry would take a host
// without a dot or a port for a Docker Hub namespace.)
func checkRepository(ref string) error {
	path, digest, hasDigest := strings.Cut(ref, "@")
	repository, tag := path, ""
	if i := strings.LastIndex(path, ":"); i >= 0 {
		repository, tag = path[:i], path[i+1:]
	}
	const placeholder = "registry.invalid/"
	if _, err := name.NewRepository(placeholder+repository, name.StrictValidation); err != nil {
		return fmt.Errorf("repository %q: want lowercase letters, digits and separators (. _ - __) in parts separated by /", repository)
	}
	switch {
	case tag == "" && !hasDigest:
		return fmt.Errorf("repository %q has no tag or digest: want repository:tag or repository@sha256:digest", repository)
	case tag != "":
		if _, err := name.NewTag(placeholder+"r:"+tag, name.StrictValidation); err != nil {
			return fmt.Errorf("tag %q: want at most 128 letters, digits, _ . or -", tag)
		}
	}
	if hasDigest {
		if _, err := name.NewDigest(placeholder+"r@"+digest, name.StrictValidation); err != nil {
			return fmt.Errorf("digest %q: want sha256: and 64 hexadecimal digits", digest)
		}
	}
	return nil
}

// downloadOCI polls a bundle in an OCI registry with OPA's OCI downloader: each poll asks the
// registry for the manifest and compares the digest of its bundle layer with the last one
// delivered, so an unchanged bundle is one HEAD request and nothing more. The downloader keeps the
// pulled blobs in a directory under TMPDIR, removed when ctx is done.
func (s Source) downloadOCI(ctx context.Context, dc download.Config, caFile string, update func(*bundle.Bundle, error)) error {
	scheme := "https"
	if s.oci.plainHTTP {
		scheme = "http"
	}
	cfg, err := clientConfig(scheme+"://"+s.oci.registry, caFile, registryAuthPlugin)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	auth := &registryAuth{registry: s.oci.registry, keychain: authn.DefaultKeychain}
	client, err := rest.New(cfg, nil, rest.AuthPluginLookup(func(string) rest.HTTPAuthPlugin { return auth }))
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	store, err := os.MkdirTemp("", "rego-injector-oci-")
	if err != nil {
		return fmt.Errorf("bundle %s: OCI store: %w", s.Spec, err)
	}
	d := download.NewOCI(dc, client, s.oci.ref, store).
		WithSizeLimitBytes(maxBundleBytes).
		WithBundleVerificationConfig(s.verify.bundleConfig()).
		WithCallback(s.deliver(update))
	d.Start(ctx)
	go func() {
		<-ctx.Done()
		d.Stop(context.Background())
		_ = os.RemoveAll(store)
	}()
	return nil
}

// registryAuthPlugin names registryAuth in the client's configuration.
const registryAuthPlugin = "docker-config"

// credentialsTTL is how long credentials read from the Docker configuration are used before they
// are read again (a credential helper may hand out short-lived ones).
const credentialsTTL = time.Minute

// registryAuth is an auth plugin of OPA's REST client: it sends the credentials that `docker
// login` (or podman login, crane auth login, a credential helper) stored for the registry, read
// from $DOCKER_CONFIG/config.json or ~/.docker/config.json. A registry that hands out tokens
// receives them at its token service, as the Docker client sends them; a redirect (to blob storage)
// receives none.
type registryAuth struct {
	registry string
	keychain authn.Keychain

	mu     sync.Mutex
	header string
	read   time.Time
}

// NewClient builds the client's transport: TLS with the configured CA.
func (a *registryAuth) NewClient(c rest.Config) (*http.Client, error) {
	t, err := rest.DefaultTLSConfig(c)
	if err != nil {
		return nil, err
	}
	timeout := int64(0)
	if c.ResponseHeaderTimeoutSeconds != nil {
		timeout = *c.ResponseHeaderTimeoutSeconds
	}
	return rest.DefaultRoundTripperClient(t, timeout), nil
}

// Prepare adds the registry's credentials to a request, when there are any.
func (a *registryAuth) Prepare(req *http.Request) error {
	if req.Response != nil { // a redirect
		return nil
	}
	h, err := a.authorization(req.Context())
	if err != nil {
		return err
	}
	if h != "" {
		req.Header.Set("Authorization", h)
	}
	return nil
}

// authorization is the Authorization header for the registry, "" for anonymous access.
func (a *registryAuth) authorization(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.read.IsZero() && time.Since(a.read) < credentialsTTL {
		return a.header, nil
	}
	reg, err := name.NewRegistry(a.registry, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("registry %s: %w", a.registry, err)
	}
	authenticator, err := authn.Resolve(ctx, a.keychain, reg)
	if err != nil {
		return "", fmt.Errorf("registry %s: credentials: %w", a.registry, err)
	}
	cfg, err := authn.Authorization(ctx, authenticator)
	if err != nil {
		return "", fmt.Errorf("registry %s: credentials: %w", a.registry, err)
	}
	var h string
	switch {
	case cfg.Auth != "":
		h = "Basic " + cfg.Auth
	case cfg.Username != "" || cfg.Password != "":
		h = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password))
	case cfg.RegistryToken != "":
		h = "Bearer " + cfg.RegistryToken
	case cfg.IdentityToken != "":
		return "", fmt.Errorf("registry %s: %w", a.registry, errIdentityToken)
	}
	a.header, a.read = h, time.Now()
	return h, nil
}

// errIdentityToken is the error for an OAuth2 identity token in the Docker configuration.
var errIdentityToken = errors.New("credentials: the Docker configuration holds an identity token, which is not supported: log in with a user name and password (or token) instead")
