package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// ErrUnchanged is returned by a poll that found the source as it was.
var ErrUnchanged = errors.New("bundle unchanged")

// Verification checks bundle signatures. A nil *Verification accepts unsigned bundles.
type Verification struct {
	config *bundle.VerificationConfig
}

// NewVerification requires every bundle to be signed by the public key (PEM, or a file holding
// it) under keyID, with algorithm alg (RS256, ES256, ...).
func NewVerification(publicKey, keyID, alg string) (*Verification, error) {
	key := publicKey
	if !strings.Contains(publicKey, "-----BEGIN") {
		b, err := os.ReadFile(publicKey)
		if err != nil {
			return nil, fmt.Errorf("verification key: %w", err)
		}
		key = string(b)
	}
	kc := &keys.Config{Key: key, Algorithm: alg}
	return &Verification{config: bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{keyID: kc}, keyID, "", nil)}, nil
}

func (v *Verification) bundleConfig() *bundle.VerificationConfig {
	if v == nil {
		return nil
	}
	return v.config
}

// Source is where one bundle comes from: a directory, a .tar.gz file, an http(s) URL of a bundle
// server, or a bundle in an OCI registry.
type Source struct {
	// Spec is the source as given on the command line.
	Spec   string
	url    *url.URL
	oci    *ociRef
	verify *Verification
}

// ParseSource reads a --bundle argument: the path of a directory or a .tar.gz file, the http(s)
// URL of a bundle on a bundle server, or oci://host[:port]/repository:tag (or @sha256:digest) for
// a bundle in an OCI registry (oci+http:// for a registry that speaks plain HTTP).
func ParseSource(spec string, verify *Verification) (Source, error) {
	s := Source{Spec: spec, verify: verify}
	if spec == "" {
		return s, errors.New("bundle source is empty: want a directory, a .tar.gz file, an http(s) URL or an oci:// reference")
	}
	scheme, rest, found := strings.Cut(spec, "://")
	if !found || !isScheme(scheme) {
		return s, nil
	}
	if scheme = strings.ToLower(scheme); scheme == "oci" || scheme == "oci+http" {
		ref, err := parseOCI(spec, scheme, rest)
		s.oci = ref
		return s, err
	}
	u, err := url.Parse(spec)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // its message repeats the URL
		}
		return s, fmt.Errorf("bundle URL %q: %w", spec, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return s, fmt.Errorf("bundle URL %q: scheme %q is not supported: want http, https, oci or oci+http, or a path without a scheme", spec, u.Scheme)
	case u.User != nil:
		return s, fmt.Errorf("bundle URL %q: user information in a bundle URL is not supported (it would not be sent to the server)", u.Redacted())
	case u.Hostname() == "":
		return s, fmt.Errorf("bundle URL %q: no host", spec)
	}
	s.url = u
	return s, nil
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then letters, digits, "+", "-"
// or "."), so that a path that happens to hold "://" is still a path.
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// Remote reports whether the source is a bundle server or an OCI registry.
func (s Source) Remote() bool { return s.url != nil || s.oci != nil }

// Read reads a local source, verifying its signature when verification is configured.
func (s Source) Read(ctx context.Context) (*bundle.Bundle, error) {
	if s.Remote() {
		return nil, fmt.Errorf("bundle %s: a remote source is downloaded, not read", s.Spec)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := os.Stat(s.Spec)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	var loader bundle.DirectoryLoader
	if st.IsDir() {
		root, err := filepath.EvalSymlinks(s.Spec) // a directory named by a symlink, swapped to publish
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", s.Spec, err)
		}
		loader = bundle.NewDirectoryLoader(root).WithFollowSymlinks(true)
	} else {
		f, err := os.Open(s.Spec)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", s.Spec, err)
		}
		defer f.Close()
		loader = bundle.NewTarballLoaderWithBaseURL(f, s.Spec)
	}
	b, err := read(loader, s.Spec, s.verify)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	return b, nil
}

// Fingerprint summarises a local source's files (names, sizes, modification times), so that a
// poll can tell whether it changed without reading it.
func (s Source) Fingerprint() (string, error) {
	h := sha256.New()
	root, err := filepath.EvalSymlinks(s.Spec)
	if err != nil {
		return "", fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	fmt.Fprintf(h, "%s\x00", root) // a swapped symlink to the tree is a change
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			// A ConfigMap volume swaps a ..data symlink: hash where links point, and what they
			// point at.
			target, _ := os.Readlink(path)
			fmt.Fprintf(h, "%s\x00->%s\x00", path, target)
			if info, err = os.Stat(path); err != nil {
				return err
			}
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", path, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// deliver turns a downloader's updates into calls of update: a bundle, or an error naming the
// source.
func (s Source) deliver(update func(*bundle.Bundle, error)) func(context.Context, download.Update) error {
	return func(_ context.Context, u download.Update) error {
		switch {
		case u.Error != nil:
			update(nil, fmt.Errorf("bundle %s: %w", s.Spec, u.Error))
		case u.Bundle != nil:
			update(u.Bundle, nil)
		}
		return nil
	}
}

// Download starts polling a remote source with OPA's bundle downloaders, with jittered delays
// between minDelay and maxDelay, and failed downloads retried sooner. From a bundle server, ETag and
// If-None-Match make an unchanged bundle a 304 and nothing more; from an OCI registry, the digest of
// the bundle layer does (see downloadOCI). update is called with each new bundle, or with the error
// of a failed download; an unchanged bundle is not reported. caFile, when set, is the CA that signs
// the server's certificate. The downloader stops when ctx is done.
func (s Source) Download(ctx context.Context, minDelay, maxDelay time.Duration, caFile string, update func(*bundle.Bundle, error)) error {
	if !s.Remote() {
		return fmt.Errorf("bundle %s: not a URL", s.Spec)
	}
	minSec, maxSec := int64(max(minDelay/time.Second, 1)), int64(max(maxDelay/time.Second, 1))
	dc := download.Config{Polling: download.PollingConfig{MinDelaySeconds: &minSec, MaxDelaySeconds: &maxSec}}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	if s.oci != nil {
		return s.downloadOCI(ctx, dc, caFile, update)
	}
	base := url.URL{Scheme: s.url.Scheme, Host: s.url.Host}
	cfg, err := clientConfig(base.String(), caFile, "")
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	client, err := rest.New(cfg, nil)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.Spec, err)
	}
	path := strings.TrimPrefix(s.url.RequestURI(), "/")
	d := download.New(dc, client, path).
		WithBundleName(s.Spec).
		WithSizeLimitBytes(maxBundleBytes).
		WithBundleVerificationConfig(s.verify.bundleConfig()).
		WithCallback(s.deliver(update))
	d.Start(ctx)
	go func() {
		<-ctx.Done()
		d.Stop(context.Background())
	}()
	return nil
}

// clientConfig is the configuration of OPA's REST client for the server at url: JSON, built with
// encoding/json (Go's %q quoting is not JSON's). With authPlugin, the server is a registry, as
// OPA's own configuration has it for a service of type oci, with credentials from that plugin.
func clientConfig(url, caFile, authPlugin string) ([]byte, error) {
	if !utf8.ValidString(caFile) {
		return nil, fmt.Errorf("CA file %q: the path is not valid UTF-8, which the client's configuration (JSON) cannot carry", caFile)
	}
	type tlsConfig struct {
		CACert string `json:"ca_cert"`
	}
	type credentials struct {
		Plugin string `json:"plugin"`
	}
	cfg := struct {
		URL         string       `json:"url"`
		Type        string       `json:"type,omitempty"`
		TLS         *tlsConfig   `json:"tls,omitempty"`
		Credentials *credentials `json:"credentials,omitempty"`
	}{URL: url}
	if caFile != "" {
		cfg.TLS = &tlsConfig{CACert: caFile}
	}
	if authPlugin != "" {
		cfg.Type, cfg.Credentials = "oci", &credentials{Plugin: authPlugin}
	}
	return json.Marshal(cfg)
}
