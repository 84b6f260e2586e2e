package reload_test

import (
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/test/registry"
)

// push publishes b (signed with key when it is not nil) at ref and returns the manifest digest.
func push(t *testing.T, ref string, b *bundle.Bundle, key *rsa.PrivateKey) string {
	t.Helper()
	return pushBytes(t, ref, tarball(t, b, key))
}

func pushBytes(t *testing.T, ref string, data []byte) string {
	t.Helper()
	digest, err := registry.Push(t.Context(), ref, data, false)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// requestLog is a reverse proxy in front of a registry that counts the requests it passes on.
type requestLog struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int // "HEAD manifests", "GET blobs", ...
}

func newRequestLog(t *testing.T, addr string) *requestLog {
	l := &requestLog{count: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := "other"
		for _, k := range []string{"manifests", "blobs"} {
			if strings.Contains(r.URL.Path, "/"+k+"/") {
				kind = k
			}
		}
		l.mu.Lock()
		l.count[r.Method+" "+kind]++
		l.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *requestLog) get(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[key]
}

// brokenRego is the default bundle at revision with a module that parses but does not compile.
func brokenRego(t *testing.T, revision string) *bundle.Bundle {
	b := defaultAt(t, revision)
	src := "package injector.broken\n\nx := y\n"
	b.Modules = append(b.Modules, bundle.ModuleFile{URL: "injector/broken.rego", Path: "injector/broken.rego", Raw: []byte(src), Parsed: ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})})
	return b
}

// TestOCIRegistry serves the bundle from a real registry: it is activated; the same bundle pushed
// again is seen as unchanged by its digest, not downloaded nor compiled again; a changed bundle is
// activated; a bundle whose Rego does not compile, or does not parse, is refused and the last good
// revision keeps serving.
func TestOCIRegistry(t *testing.T) {
	reg := registry.ForTest(t, registry.Options{})
	ref := reg.Addr + "/policies/injector:live"
	first := tarball(t, defaultAt(t, "oci-1"), nil)
	pushBytes(t, ref, first)
	requests := newRequestLog(t, reg.Addr)
	inj, r := start(t, nil, "oci+http://"+strings.TrimPrefix(requests.URL, "http://")+"/policies/injector:live")
	waitFor(t, "oci-1", func() bool { return inj.Revision() == "oci-1" && r.Status().Revision == "oci-1" })

	t.Run("same bundle pushed again", func(t *testing.T) {
		blobs := requests.get("GET blobs")
		pushBytes(t, ref, first)
		heads := requests.get("HEAD manifests")
		waitFor(t, "three more polls", func() bool { return requests.get("HEAD manifests") >= heads+3 })
		if got := requests.get("GET blobs"); got != blobs {
			t.Errorf("an unchanged bundle was downloaded again: %d blob downloads, before %d", got, blobs)
		}
		if st := r.Status(); st.Activations != 1 || st.Refusals != 0 {
			t.Errorf("an unchanged bundle was compiled again: %+v", st)
		}
	})
	t.Run("changed bundle", func(t *testing.T) {
		push(t, ref, defaultAt(t, "oci-2"), nil)
		waitFor(t, "oci-2", func() bool { return inj.Revision() == "oci-2" && r.Status().Revision == "oci-2" })
		if st := r.Status(); st.Activations != 2 {
			t.Errorf("status %+v", st)
		}
	})
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"rego does not compile", tarball(t, brokenRego(t, "bad-1"), nil), "var y is unsafe"},
		{"rego does not parse", func() []byte {
			b := defaultAt(t, "bad-2")
			b.Modules = append(b.Modules, bundle.ModuleFile{URL: "injector/broken.rego", Path: "injector/broken.rego", Raw: []byte("package injector.broken\n\nx := {\n")})
			return tarball(t, b, nil)
		}(), "rego_parse_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A bundle that fails to download (here: to parse) is refused again at every retry, the
			// previous one too: wait for this one's refusal.
			pushBytes(t, ref, tc.bundle)
			waitFor(t, "a refusal: "+tc.want, func() bool { return strings.Contains(r.Status().LastError, tc.want) })
			time.Sleep(1500 * time.Millisecond) // another poll
			if inj.Revision() != "oci-2" || r.Status().Revision != "oci-2" {
				t.Fatalf("revision %q after a broken bundle", inj.Revision())
			}
		})
	}
	t.Run("good again", func(t *testing.T) {
		push(t, ref, defaultAt(t, "oci-3"), nil)
		waitFor(t, "oci-3", func() bool { return inj.Revision() == "oci-3" && r.Status().Revision == "oci-3" })
		if st := r.Status(); st.LastError != "" {
			t.Errorf("status %+v", st)
		}
	})
}

// TestOCIRegistrySignedBundles: with a verification key, a bundle signed with it is activated, an
// unsigned one, one signed by another key and a tampered one are refused.
func TestOCIRegistrySignedBundles(t *testing.T) {
	reg := registry.ForTest(t, registry.Options{})
	key, other := newKey(t), newKey(t)
	verify, err := policy.NewVerification(publicPEM(t, key), "default", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Addr + "/injector:signed"
	push(t, ref, defaultAt(t, "signed-1"), key)
	inj, r := start(t, verify, "oci+http://"+ref)
	waitFor(t, "signed-1", func() bool { return inj.Revision() == "signed-1" && r.Status().Revision == "signed-1" })
	tampered := func() []byte {
		b := defaultAt(t, "tampered")
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(privatePEM(key)), "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
		b.Data["injector"].(map[string]any)["config"].(map[string]any)["policy"] = "disabled"
		return tarball(t, b, nil)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"unsigned", tarball(t, defaultAt(t, "unsigned"), nil), "signature"},
		{"signed by another key", tarball(t, defaultAt(t, "other"), other), "verif"},
		{"tampered", tampered(), "digest mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A bundle that fails verification is refused again at every retry, the previous one too:
			// wait for this one's refusal.
			pushBytes(t, ref, tc.bundle)
			waitFor(t, "a refusal: "+tc.want, func() bool { return strings.Contains(strings.ToLower(r.Status().LastError), tc.want) })
			if inj.Revision() != "signed-1" {
				t.Fatalf("revision %q after a bundle that fails verification", inj.Revision())
			}
		})
	}
	push(t, ref, defaultAt(t, "signed-2"), key)
	waitFor(t, "signed-2", func() bool { return inj.Revision() == "signed-2" && r.Status().Revision == "signed-2" })
}

// TestOCIRegistryDown: while the registry is down the last good revision keeps serving and the
// failures are recorded; downloads are retried, and once the registry is back a new bundle is
// activated.
func TestOCIRegistryDown(t *testing.T) {
	reg := registry.ForTest(t, registry.Options{})
	ref := reg.Addr + "/injector:live"
	push(t, ref, defaultAt(t, "up-1"), nil)
	inj, r := start(t, nil, "oci+http://"+ref)
	waitFor(t, "up-1", func() bool { return inj.Revision() == "up-1" && r.Status().Revision == "up-1" })

	reg.Stop()
	waitFor(t, "two failed downloads", func() bool { return r.Status().Refusals >= 2 })
	if st := r.Status(); inj.Revision() != "up-1" || st.Revision != "up-1" || !strings.Contains(st.LastError, "connection refused") {
		t.Fatalf("revision %q while the registry is down, status %+v", inj.Revision(), st)
	}
	if err := reg.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	push(t, ref, defaultAt(t, "up-2"), nil)
	waitFor(t, "up-2", func() bool { return inj.Revision() == "up-2" && r.Status().Revision == "up-2" })
	if st := r.Status(); st.Activations != 2 || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

// TestOCIRegistryCredentials: a registry that requires a login is read with the credentials docker
// login stored in $DOCKER_CONFIG/config.json; without them the download is refused.
func TestOCIRegistryCredentials(t *testing.T) {
	// htpasswd line for bundle-reader, password bundle-reader-password (bcrypt, cost 4).
	reg := registry.ForTest(t, registry.Options{HTPasswd: "bundle-reader:$2a$04$9CXBb9TkggcwUe/qnbzl1Oac.FU0NdhndC8b4rrHzG.LcCVTPjER."})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	ref := reg.Addr + "/injector:private"

	t.Run("without credentials", func(t *testing.T) {
		if _, err := registry.Push(t.Context(), ref, tarball(t, defaultAt(t, "anon"), nil), false); err == nil {
			t.Fatal("the registry accepted a push without credentials")
		}
		_, r := start(t, nil, "oci+http://"+ref)
		waitFor(t, "a refusal", func() bool { return r.Status().Refusals > 0 })
		if st := r.Status(); !strings.Contains(st.LastError, "credential not found") || st.Activations != 0 {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("docker login", func(t *testing.T) {
		auth := base64.StdEncoding.EncodeToString([]byte("bundle-reader:bundle-reader-password"))
		config := `{"auths": {"` + reg.Addr + `": {"auth": "` + auth + `"}}}`
		if err := os.MkdirAll(filepath.Join(home, "docker"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "docker", "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		push(t, ref, defaultAt(t, "private-1"), nil)
		inj, r := start(t, nil, "oci+http://"+ref)
		waitFor(t, "private-1", func() bool { return inj.Revision() == "private-1" && r.Status().Revision == "private-1" })
	})
}
