package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/rego-injector/rego-injector/engine/policy"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		remote  bool
		wantErr string // "" wants a source
	}{
		{spec: "bundles/default"},
		{spec: "/etc/rego-injector/bundle.tar.gz"},
		{spec: "https://bundles.example.com/v1/injector.tar.gz", remote: true},
		{spec: "http://127.0.0.1:8181/bundles/injector.tar.gz?tenant=a", remote: true},
		{spec: "HTTPS://bundles.example.com/injector.tar.gz", remote: true},
		{spec: "", wantErr: "bundle source is empty"},
		{spec: "http://", wantErr: `bundle URL "http://": no host`},
		{spec: "https://", wantErr: `bundle URL "https://": no host`},
		{spec: "https:///injector.tar.gz", wantErr: `bundle URL "https:///injector.tar.gz": no host`},
		{spec: "http://:8181/injector.tar.gz", wantErr: `bundle URL "http://:8181/injector.tar.gz": no host`},
		{spec: "http://bundles.example.com:port/b.tar.gz", wantErr: `bundle URL "http://bundles.example.com:port/b.tar.gz": invalid port ":port" after host`},
		{spec: "bundles/v1://draft"},
		{spec: "ftp://bundles.example.com/b.tar.gz", wantErr: `bundle URL "ftp://bundles.example.com/b.tar.gz": scheme "ftp" is not supported: want http, https, oci or oci+http`},
		{spec: "file:///etc/bundle.tar.gz", wantErr: `scheme "file" is not supported: want http, https, oci or oci+http, or a path without a scheme`},
		{spec: "https://user:secret@bundles.example.com/b.tar.gz", wantErr: "user information in a bundle URL is not supported"},
		{spec: "oci://registry.example.com/policies/injector:v1", remote: true},
		{spec: "oci://127.0.0.1:5000/injector:v1", remote: true},
		{spec: "oci+http://127.0.0.1:5000/injector:v1", remote: true},
		{spec: "OCI://registry.example.com/injector:v1", remote: true},
		{spec: "oci://registry/injector@sha256:" + strings.Repeat("a", 64), remote: true},
		{spec: "oci://registry.example.com/injector:v1@sha256:" + strings.Repeat("0", 64), remote: true},
		{spec: "oci://registry.example.com/injector", wantErr: `bundle reference "oci://registry.example.com/injector": repository "injector" has no tag or digest`},
		{spec: "oci://registry.example.com/", wantErr: "want oci://host[:port]/repository:tag or @sha256:digest"},
		{spec: "oci://registry.example.com", wantErr: "want oci://host[:port]/repository:tag or @sha256:digest"},
		{spec: "oci+http:///injector:v1", wantErr: `"" is not a registry host[:port]`},
		{spec: "oci://registry.example.com:port/injector:v1", wantErr: `"registry.example.com:port" is not a registry host[:port]`},
		{spec: "oci://registry.example.com/Injector:v1", wantErr: `repository "Injector": want lowercase`},
		{spec: "oci://registry.example.com/injector:v1!", wantErr: `tag "v1!": want at most 128`},
		{spec: "oci://127.0.0.1:5000/injector:v1:v2", wantErr: `repository "injector:v1": want lowercase`},
		{spec: "oci://registry.example.com/injector@sha256:abc", wantErr: `digest "sha256:abc": want sha256: and 64`},
		{spec: "oci://user:secret@registry.example.com/injector:v1", wantErr: "user information is not supported: credentials come from the Docker configuration"},
	} {
		s, err := policy.ParseSource(tc.spec, nil)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error: %v", tc.spec, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tc.spec, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "%!"):
			t.Errorf("%q: misformatted error %q", tc.spec, err)
		case err == nil && s.Remote() != tc.remote:
			t.Errorf("%q: Remote() = %v, want %v", tc.spec, s.Remote(), tc.remote)
		}
		if strings.Contains(tc.spec, "secret") && err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error repeats the password: %v", tc.spec, err)
		}
	}
}

// testModule is a `_test.rego` module that would break the policy if it were served: it redeclares
// the decision, has an unsafe variable and reads the clock.
const testModule = `package injector.mutate

decision := {"inject": true, "variant": "sidecar", "reasons": ["decided by a test module"]}

test_unsafe if x == 1

test_clock if time.now_ns() > 0
`

// sourceBundle is a small bundle with a test module beside its policy, signed with key when key is
// not nil.
func sourceBundle(t *testing.T, key *ecdsa.PrivateKey) *bundle.Bundle {
	t.Helper()
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "source-1", Roots: &[]string{"injector"}},
		Data:     map[string]any{"injector": map[string]any{"templates": map[string]any{"sidecar": "spec: {}\n"}}},
	}
	for path, src := range map[string]string{
		"injector/mutate.rego":      "package injector.mutate\n\ndecision := {\"inject\": false, \"reasons\": [\"decided by the policy\"]}\n",
		"injector/validate.rego":    "package injector.validate\n\ndeny := set()\n",
		"injector/mutate_test.rego": testModule,
	} {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: []byte(src)})
	}
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err := b.GenerateSignature(bundle.NewSigningConfig(pemKey, "ES256", ""), "signer", false); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func tarball(t *testing.T, b *bundle.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// untar writes the files of a .tar.gz into dir.
func untar(t *testing.T, data []byte, dir string) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(h.Name, "/")))
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// serveBundle serves data over HTTPS at /bundles/injector.tar.gz and writes the server's CA
// certificate to caFile.
func serveBundle(t *testing.T, data []byte, caFile string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundles/injector.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv
}

// download downloads src once.
func download(t *testing.T, src policy.Source, caFile string) (*bundle.Bundle, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type update struct {
		b   *bundle.Bundle
		err error
	}
	updates := make(chan update, 1)
	err := src.Download(ctx, time.Second, time.Second, caFile, func(b *bundle.Bundle, err error) {
		select {
		case updates <- update{b, err}:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	select {
	case u := <-updates:
		return u.b, u.err
	case <-time.After(20 * time.Second):
		t.Fatal("no download in 20 s")
	}
	return nil, nil
}

// TestTestModulesNotServedFromAnySource: a bundle's `_test.rego` modules are for `opa test`: from a
// directory, a .tar.gz file or a bundle server, signed or not, they neither break the bundle nor
// reach the served policy.
func TestTestModulesNotServedFromAnySource(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	verify, err := policy.NewVerification(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "signer", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	for _, signed := range []bool{false, true} {
		var (
			signer *ecdsa.PrivateKey
			check  *policy.Verification
		)
		if signed {
			signer, check = key, verify
		}
		data := tarball(t, sourceBundle(t, signer))
		for kind, read := range map[string]func(t *testing.T) (*bundle.Bundle, error){
			"directory": func(t *testing.T) (*bundle.Bundle, error) {
				dir := t.TempDir()
				untar(t, data, dir)
				return readSource(t, dir, check)
			},
			"tarball": func(t *testing.T) (*bundle.Bundle, error) {
				file := filepath.Join(t.TempDir(), "injector.tar.gz")
				if err := os.WriteFile(file, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return readSource(t, file, check)
			},
			"download": func(t *testing.T) (*bundle.Bundle, error) {
				caFile := filepath.Join(t.TempDir(), "ca.crt")
				srv := serveBundle(t, data, caFile)
				src, err := policy.ParseSource(srv.URL+"/bundles/injector.tar.gz", check)
				if err != nil {
					t.Fatal(err)
				}
				return download(t, src, caFile)
			},
		} {
			t.Run(fmt.Sprintf("%s signed=%v", kind, signed), func(t *testing.T) {
				b, err := read(t)
				if err != nil {
					t.Fatalf("bundle refused: %v", err)
				}
				p, err := policy.Compile(t.Context(), b)
				if err != nil {
					t.Fatalf("compile: %v", err)
				}
				d, err := p.Decide(t.Context(), ast.MustParseTerm(`{}`).Value)
				if err != nil || fmt.Sprint(d.Reasons) != "[decided by the policy]" {
					t.Errorf("decision %+v, %v: want the policy's, not the test module's", d, err)
				}
				if !p.Pure() {
					t.Error("the test module's clock reading made the policy impure")
				}
			})
		}
	}
}

func readSource(t *testing.T, spec string, verify *policy.Verification) (*bundle.Bundle, error) {
	t.Helper()
	src, err := policy.ParseSource(spec, verify)
	if err != nil {
		t.Fatal(err)
	}
	return src.Read(t.Context())
}

// TestDownloadCAFileNamedOddly: the CA file's path reaches OPA's client as JSON, whatever characters
// it holds (Go's %q quoting writes some of them in ways JSON does not read).
func TestDownloadCAFileNamedOddly(t *testing.T) {
	data := tarball(t, sourceBundle(t, nil))
	for _, name := range []string{"ca\x7f.crt", "ca\u2028.crt", "ca\U000e0001.crt", `ca "quoted" \ back.crt`, "ca-é-😀.crt"} {
		t.Run(strconv.QuoteToASCII(name), func(t *testing.T) {
			caFile := filepath.Join(t.TempDir(), name)
			srv := serveBundle(t, data, caFile)
			src, err := policy.ParseSource(srv.URL+"/bundles/injector.tar.gz", nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := download(t, src, caFile)
			if err != nil {
				t.Fatalf("download with CA file %q: %v", caFile, err)
			}
			if b.Manifest.Revision != "source-1" {
				t.Errorf("revision %q", b.Manifest.Revision)
			}
		})
	}
	src, err := policy.ParseSource("https://127.0.0.1:1/bundles/injector.tar.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Download(t.Context(), time.Second, time.Second, filepath.Join(t.TempDir(), "ca\xff.crt"), func(*bundle.Bundle, error) {})
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("a CA file path that JSON cannot carry: %v", err)
	}
}

// TestSymlinkedDirectory: a bundle directory named by a symlink, swapped to publish a new tree
// (as a ConfigMap volume or a deploy script does), is read through the link, and the swap changes
// its fingerprint.
func TestSymlinkedDirectory(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{"a", "b"} {
		b := sourceBundle(t, nil)
		b.Manifest.Revision = "tree-" + name
		untar(t, tarball(t, b), filepath.Join(base, name))
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink(filepath.Join(base, "a"), link); err != nil {
		t.Fatal(err)
	}
	src, err := policy.ParseSource(link, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Read(t.Context())
	if err != nil || b.Manifest.Revision != "tree-a" {
		t.Fatalf("through the link: %v, %v", b, err)
	}
	before, err := src.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(base, "next")
	if err := os.Symlink(filepath.Join(base, "b"), next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, link); err != nil {
		t.Fatal(err)
	}
	after, err := src.Fingerprint()
	if err != nil || after == before {
		t.Fatalf("the swap left the fingerprint as it was (%v)", err)
	}
	if b, err = src.Read(t.Context()); err != nil || b.Manifest.Revision != "tree-b" {
		t.Fatalf("after the swap: %v, %v", b, err)
	}
}
