package reload_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/reload"
)

// defaultAt is the embedded default bundle at another revision.
func defaultAt(t *testing.T, revision string) *bundle.Bundle {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = revision
	return b
}

// tarball is b as a bundle file (.tar.gz), signed with key when it is not nil.
func tarball(t *testing.T, b *bundle.Bundle, key *rsa.PrivateKey) []byte {
	t.Helper()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(privatePEM(key)), "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeTarball writes b as a bundle file, signed with key when it is not nil.
func writeTarball(t *testing.T, path string, b *bundle.Bundle, key *rsa.PrivateKey) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, tarball(t, b, key), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeDir lays b out as a bundle directory.
func writeDir(t *testing.T, dir string, b *bundle.Bundle) {
	t.Helper()
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest, _ := json.Marshal(b.Manifest)
	data, _ := json.Marshal(b.Data)
	write(".manifest", manifest)
	write("data.json", data)
	for _, m := range b.Modules {
		write(m.Path, m.Raw)
	}
}

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func privatePEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func publicPEM(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func start(t *testing.T, verify *policy.Verification, specs ...string) (*injector.Injector, *reload.Reloader) {
	t.Helper()
	inj := injector.New(cluster.Static{})
	var sources []policy.Source
	for _, s := range specs {
		src, err := policy.ParseSource(s, verify)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	r := reload.New(inj, reload.Options{Name: "live", Sources: sources, Interval: 20 * time.Millisecond, PollMin: time.Second, PollMax: time.Second})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return inj, r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReloadDirectory(t *testing.T) {
	dir := t.TempDir()
	writeDir(t, dir, defaultAt(t, "dir-1"))
	inj, r := start(t, nil, dir)
	if inj.Revision() != "dir-1" {
		t.Fatalf("revision %q", inj.Revision())
	}
	time.Sleep(20 * time.Millisecond) // a distinct modification time
	writeDir(t, dir, defaultAt(t, "dir-2"))
	waitFor(t, "dir-2", func() bool { return inj.Revision() == "dir-2" && r.Status().Revision == "dir-2" })
	// writeDir writes file by file, as an editor would: a check in the middle may read a torn
	// directory and refuse it, and the next one, whole, activates it. Nothing else is activated.
	if st := r.Status(); st.Activations != 2 || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

func TestReloadTarball(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	writeTarball(t, file, defaultAt(t, "tar-1"), nil)
	inj, r := start(t, nil, file)
	writeTarball(t, file, defaultAt(t, "tar-2"), nil)
	waitFor(t, "tar-2", func() bool { return inj.Revision() == "tar-2" && r.Status().Revision == "tar-2" })
}

// TestBadBundlesKeepTheLastGood: with a verification key configured, each bad bundle is refused
// and the last good revision keeps serving; a good signed bundle then activates.
func TestBadBundlesKeepTheLastGood(t *testing.T) {
	key, other := newKey(t), newKey(t)
	verify, err := policy.NewVerification(publicPEM(t, key), "default", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	writeTarball(t, file, defaultAt(t, "good-1"), key)
	inj, r := start(t, verify, file)
	if inj.Revision() != "good-1" {
		t.Fatalf("a signed bundle was not activated: %q", inj.Revision())
	}
	module := func(b *bundle.Bundle, path, src string) {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: []byte(src), Parsed: ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})})
	}
	templates := func(b *bundle.Bundle) map[string]any {
		return b.Data["injector"].(map[string]any)["templates"].(map[string]any)
	}
	cases := []struct {
		name string
		make func() *bundle.Bundle
		key  *rsa.PrivateKey
		want string
	}{
		{"unsigned", func() *bundle.Bundle { return defaultAt(t, "bad") }, nil, "signature"},
		{"signed by another key", func() *bundle.Bundle { return defaultAt(t, "bad") }, other, "verif"},
		{"roots violated", func() *bundle.Bundle {
			b := defaultAt(t, "bad")
			module(b, "other/x.rego", "package other\n\nx := 1\n")
			return b
		}, key, "root"},
		{"rego does not compile", func() *bundle.Bundle {
			b := defaultAt(t, "bad")
			module(b, "injector/broken.rego", "package injector.broken\n\nx := y\n")
			return b
		}, key, "y"},
		{"template does not parse", func() *bundle.Bundle {
			b := defaultAt(t, "bad")
			templates(b)["sidecar"] = "{{ if }"
			return b
		}, key, "template"},
		{"values fail the self-test", func() *bundle.Bundle {
			b := defaultAt(t, "bad")
			b.Data["injector"].(map[string]any)["values"].(map[string]any)["proxy"].(map[string]any)["resources"] = map[string]any{"requests": map[string]any{"cpu": "lots"}}
			return b
		}, key, "self-test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Status().Refusals
			writeTarball(t, file, tc.make(), tc.key)
			waitFor(t, "a refusal", func() bool { return r.Status().Refusals > before })
			if st := r.Status(); !strings.Contains(strings.ToLower(st.LastError), tc.want) {
				t.Errorf("refused for another reason: %s", st.LastError)
			}
			if inj.Revision() != "good-1" {
				t.Fatalf("revision %q after a bad bundle", inj.Revision())
			}
		})
	}
	// Tampered: signed, then changed.
	b := defaultAt(t, "tampered")
	if err := b.GenerateSignature(bundle.NewSigningConfig(string(privatePEM(key)), "RS256", ""), "default", false); err != nil {
		t.Fatal(err)
	}
	b.Data["injector"].(map[string]any)["config"].(map[string]any)["policy"] = "disabled"
	before := r.Status().Refusals
	writeTarball(t, file, b, nil)
	waitFor(t, "the tampered bundle refused", func() bool { return r.Status().Refusals > before })
	if inj.Revision() != "good-1" {
		t.Fatalf("a tampered bundle was activated")
	}
	writeTarball(t, file, defaultAt(t, "good-2"), key)
	waitFor(t, "good-2", func() bool { return inj.Revision() == "good-2" && r.Status().Revision == "good-2" })
}

// TestBundleServer: a bundle server answering with an ETag; unchanged polls are 304s and compile
// nothing; a new bundle is activated.
func TestBundleServer(t *testing.T) {
	var current atomic.Value
	var etag atomic.Value
	var full, notModified atomic.Int64
	publish := func(b *bundle.Bundle, tag string) {
		var buf bytes.Buffer
		if err := bundle.NewWriter(&buf).Write(*b); err != nil {
			t.Fatal(err)
		}
		current.Store(buf.Bytes())
		etag.Store(tag)
	}
	publish(defaultAt(t, "http-1"), `"v1"`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag := etag.Load().(string)
		if r.Header.Get("If-None-Match") == tag {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", tag)
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(current.Load().([]byte))
	}))
	defer srv.Close()
	inj, r := start(t, nil, srv.URL+"/bundles/default.tar.gz")
	waitFor(t, "http-1", func() bool { return inj.Revision() == "http-1" && r.Status().Revision == "http-1" })
	waitFor(t, "two 304s", func() bool { return notModified.Load() >= 2 })
	if st := r.Status(); st.Activations != 1 || full.Load() != 1 {
		t.Fatalf("unchanged bundle recompiled: %+v, %d full downloads", st, full.Load())
	}
	publish(defaultAt(t, "http-2"), `"v2"`)
	waitFor(t, "http-2", func() bool { return inj.Revision() == "http-2" && r.Status().Revision == "http-2" })
	if r.Status().Activations != 2 {
		t.Errorf("status %+v", r.Status())
	}
}

func TestStartRefusesABrokenBundle(t *testing.T) {
	dir := t.TempDir()
	b := defaultAt(t, "broken")
	b.Data["injector"].(map[string]any)["templates"].(map[string]any)["sidecar"] = "{{ if }"
	writeDir(t, dir, b)
	src, _ := policy.ParseSource(dir, nil)
	r := reload.New(injector.New(cluster.Static{}), reload.Options{Name: "live", Sources: []policy.Source{src}})
	if err := r.Start(t.Context()); err == nil {
		t.Fatal("started on a bundle whose template does not parse")
	}
}

// TestReloadConfigMapVolume: a bundle mounted from a ConfigMap is updated by the kubelet swapping
// a ..data symlink; the new revision is activated.
func TestReloadConfigMapVolume(t *testing.T) {
	dir := t.TempDir()
	// A ConfigMap has no subdirectories: the bundle's files sit flat, each a symlink into ..data.
	var files []string
	version := func(name, revision string) {
		b := defaultAt(t, revision)
		files = files[:0]
		for i := range b.Modules {
			b.Modules[i].Path = strings.ReplaceAll(strings.TrimPrefix(b.Modules[i].Path, "policies/"), "/", "_")
			files = append(files, b.Modules[i].Path)
		}
		writeDir(t, filepath.Join(dir, name), b)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01", "cm-1")
	for _, top := range append([]string{".manifest", "data.json"}, files...) {
		if err := os.Symlink(filepath.Join("..data", top), filepath.Join(dir, top)); err != nil {
			t.Fatal(err)
		}
	}
	inj, r := start(t, nil, dir)
	if inj.Revision() != "cm-1" {
		t.Fatalf("revision %q", inj.Revision())
	}
	version("..2026_02", "cm-2")
	waitFor(t, "cm-2", func() bool { return inj.Revision() == "cm-2" && r.Status().Revision == "cm-2" })
}

// TestBundleServerWithoutETags: a server that sends the same bundle in full on every poll costs a
// download, not an activation.
func TestBundleServerWithoutETags(t *testing.T) {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*defaultAt(t, "plain-1")); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = w.Write(buf.Bytes())
	}))
	defer srv.Close()
	inj, r := start(t, nil, srv.URL+"/b.tar.gz")
	waitFor(t, "plain-1", func() bool { return inj.Revision() == "plain-1" && r.Status().Revision == "plain-1" })
	waitFor(t, "three downloads", func() bool { return served.Load() >= 3 })
	if st := r.Status(); st.Activations != 1 {
		t.Fatalf("the same bundle was activated %d times", st.Activations)
	}
}

// extraAt is a small bundle beside the default one (root "extra") at revision.
func extraAt(t *testing.T, revision string) *bundle.Bundle {
	t.Helper()
	raw := []byte("package extra\n\nrevision := \"" + revision + "\"\n")
	parsed, err := ast.ParseModuleWithOpts("extra/extra.rego", string(raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{"extra"}
	return &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &roots},
		Data:     map[string]any{},
		Modules:  []bundle.ModuleFile{{URL: "extra/extra.rego", Path: "extra/extra.rego", Raw: raw, Parsed: parsed}},
	}
}

// bundleServer serves one bundle with an ETag, the way a bundle server does; publish replaces it,
// served reports how many times each ETag was sent in full.
type bundleServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	etag   string
	served map[string]int
}

func newBundleServer(t *testing.T) *bundleServer {
	s := &bundleServer{served: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, tag := s.body, s.etag
		if r.Header.Get("If-None-Match") != tag {
			s.served[tag]++
		}
		s.mu.Unlock()
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", tag)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *bundleServer) publish(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = buf.Bytes(), `"`+b.Manifest.Revision+`"`
}

func (s *bundleServer) sent(revision string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[`"`+revision+`"`] > 0
}

// gate is an Activator that records every revision it is given and holds the activation of the
// revision named hold until release is closed (or a second has passed).
type gate struct {
	target    reload.Activator
	hold      string
	release   chan struct{}
	mu        sync.Mutex
	activated []string
}

func (g *gate) Activate(p *policy.Policy) error {
	if p.Revision() == g.hold {
		select {
		case <-g.release:
		case <-time.After(time.Second):
		}
	}
	if err := g.target.Activate(p); err != nil {
		return err
	}
	g.mu.Lock()
	g.activated = append(g.activated, p.Revision())
	g.mu.Unlock()
	return nil
}

// TestConcurrentSourcesLoseNoUpdate has two bundle servers publish a new revision at once, the
// activation of the first held until the second has been downloaded: both new bundles must end up
// active, and the revision must never go back. (With each source activating its own copy of the
// bundles, the second activation's copy lacks the first's new bundle, and the held activation then
// overwrites the second's; the lost bundle is never sent again, for its ETag has not changed.)
func TestConcurrentSourcesLoseNoUpdate(t *testing.T) {
	a, b := newBundleServer(t), newBundleServer(t)
	a.publish(t, defaultAt(t, "a1"))
	b.publish(t, extraAt(t, "b1"))
	inj := injector.New(cluster.Static{})
	g := &gate{target: inj, hold: "a2+b1", release: make(chan struct{})}
	var sources []policy.Source
	for _, u := range []string{a.URL + "/a.tar.gz", b.URL + "/b.tar.gz"} {
		src, err := policy.ParseSource(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	r := reload.New(g, reload.Options{Name: "live", Sources: sources, PollMin: time.Second, PollMax: time.Second})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a1+b1", func() bool { return inj.Revision() == "a1+b1" })

	a.publish(t, defaultAt(t, "a2"))
	b.publish(t, extraAt(t, "b2"))
	go func() { // let b2 arrive while a2 is being activated
		for !b.sent("b2") {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		close(g.release)
	}()
	waitFor(t, "a2+b2", func() bool { return inj.Revision() == "a2+b2" })
	time.Sleep(2500 * time.Millisecond) // two more polls: nothing may move the revision back
	if got := inj.Revision(); got != "a2+b2" {
		t.Fatalf("revision went back to %s", got)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	order := map[string]int{"a1+b1": 0, "a2+b1": 1, "a1+b2": 1, "a2+b2": 2}
	for k := 1; k < len(g.activated); k++ {
		if order[g.activated[k]] < order[g.activated[k-1]] {
			t.Errorf("activations went backwards: %v", g.activated)
		}
	}
}

// TestRemoteSourcesArrivingTogether starts on two bundle servers whose first bundles arrive at
// the same moment: the revision they make together must be activated.
func TestRemoteSourcesArrivingTogether(t *testing.T) {
	for range 5 {
		a, b := newBundleServer(t), newBundleServer(t)
		a.publish(t, defaultAt(t, "a1"))
		b.publish(t, extraAt(t, "b1"))
		inj, _ := start(t, nil, a.URL+"/a.tar.gz", b.URL+"/b.tar.gz")
		waitFor(t, "a1+b1", func() bool { return inj.Revision() == "a1+b1" })
	}
}

// TestOneBrokenSourceDoesNotBlockAnother publishes a broken bundle on one source and a good one on
// the other at once: the good one is activated, the broken one refused.
func TestOneBrokenSourceDoesNotBlockAnother(t *testing.T) {
	a, b := newBundleServer(t), newBundleServer(t)
	a.publish(t, defaultAt(t, "a1"))
	b.publish(t, extraAt(t, "b1"))
	inj, r := start(t, nil, a.URL+"/a.tar.gz", b.URL+"/b.tar.gz")
	waitFor(t, "a1+b1", func() bool { return inj.Revision() == "a1+b1" })
	broken := extraAt(t, "b2")
	broken.Modules[0].Raw = []byte("package extra\n\nrevision := undefined_function(1)\n")
	broken.Modules[0].Parsed = nil
	a.publish(t, defaultAt(t, "a2"))
	b.publish(t, broken)
	waitFor(t, "a2+b1", func() bool { return inj.Revision() == "a2+b1" })
	waitFor(t, "a refusal", func() bool { return r.Status().Refusals > 0 })
}
