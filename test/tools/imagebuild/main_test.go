package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The tests build the image once, from the binaries `make image` built when REGO_INJECTOR_IMAGE_BIN
// names their directory (bin/: linux-amd64/rego-injector, linux-arm64/rego-injector) and
// REGO_INJECTOR_IMAGE_VERSION their version, and otherwise from two small stand-ins they compile,
// which check everything but what only the real binary holds.

var (
	fixtureOnce sync.Once
	shared      fixture
	workDir     string
)

type fixture struct {
	spec     spec
	tarball  string
	real     bool
	binaries map[string][]byte // by architecture
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

var platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

const (
	imageName      = "rego-injector:v0.0.0-test"
	standInVersion = "v0.0.0-stand-in"
)

// image is the image the tests share, its spec and where its tarball is.
func image(t *testing.T) fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		shared.err = func() error {
			dir, err := os.MkdirTemp("", "imagebuild-test-")
			if err != nil {
				return err
			}
			workDir = dir
			shared.binaries = map[string][]byte{}
			binDir := os.Getenv("REGO_INJECTOR_IMAGE_BIN")
			shared.real = binDir != ""
			for _, p := range platforms {
				path := filepath.Join(binDir, p.OS+"-"+p.Architecture, "rego-injector")
				if !shared.real {
					if path, err = standIn(dir, p); err != nil {
						return err
					}
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				shared.binaries[p.Architecture] = b
				shared.spec.Binaries = append(shared.spec.Binaries, binary{Platform: p, Path: path})
			}
			shared.spec.Version = standInVersion
			if shared.real {
				// -trimpath leaves -ldflags out of the build information: the version comes with the binaries.
				shared.spec.Version = os.Getenv("REGO_INJECTOR_IMAGE_VERSION")
				if shared.spec.Version == "" {
					return errors.New("REGO_INJECTOR_IMAGE_BIN is set, REGO_INJECTOR_IMAGE_VERSION is not")
				}
			}
			shared.spec.Revision = "0123456789abcdef0123456789abcdef01234567"
			shared.spec.Source = "https://github.com/rego-injector/rego-injector"
			shared.spec.Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			shared.tarball = filepath.Join(dir, "image.tar")
			return build(shared.spec, shared.tarball, imageName, io.Discard)
		}()
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared
}

// standIn compiles a small program for p that answers `version` as rego-injector does.
func standIn(dir string, p v1.Platform) (string, error) {
	src := filepath.Join(dir, "stand-in")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod": "module example.com/stand-in\n\ngo 1.26\n",
		"main.go": `package main

import "os"

var version = "dev"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		os.Stdout.WriteString("rego-injector " + version + "\n")
	}
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, p.OS+"-"+p.Architecture, "rego-injector")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+standInVersion, "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the stand-in for %s: %w\n%s", p, err, b)
	}
	return out, nil
}

// readBack reads the fixture's tarball with go-containerregistry's layout package.
func readBack(t *testing.T, tarball string) (v1.ImageIndex, v1.Descriptor) {
	t.Helper()
	idx, desc, err := readLayout(tarball, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return idx, desc
}

// platformImage returns the index's image for p.
func imageFor(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Equals(p) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image for %s", p)
	return nil
}

func TestLayoutTarball(t *testing.T) {
	f := image(t)
	file, err := os.Open(f.tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	tr := tar.NewReader(file)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(f.spec.Created) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || len(h.PAXRecords) > 0 {
			t.Errorf("%s: mtime %s, owner %d:%d %q, PAX %v: want %s, 0:0, no names, no PAX records", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.PAXRecords, f.spec.Created)
		}
		if h.Name != "oci-layout" && h.Name != "index.json" && !strings.HasPrefix(h.Name, "blobs/sha256/") && h.Name != "blobs/" {
			t.Errorf("unexpected entry %s", h.Name)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}

	_, desc := readBack(t, f.tarball)
	if desc.MediaType != types.OCIImageIndex {
		t.Errorf("index.json names a %s, want an image index", desc.MediaType)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != "v0.0.0-test" {
		t.Errorf("ref.name %q, want the tag v0.0.0-test", got)
	}
	if got := desc.Annotations["io.containerd.image.name"]; got != "docker.io/library/"+imageName {
		t.Errorf("io.containerd.image.name %q, want docker.io/library/%s", got, imageName)
	}
}

func TestIndex(t *testing.T) {
	f := image(t)
	idx, _ := readBack(t, f.tarball)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s", m.MediaType)
	}
	for k, v := range f.spec.annotations() {
		if m.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if m.Annotations["org.opencontainers.image.created"] != "2026-01-02T03:04:05Z" {
		t.Errorf("created %q", m.Annotations["org.opencontainers.image.created"])
	}
	var images, sboms []v1.Descriptor
	for _, d := range m.Manifests {
		if d.ArtifactType == spdxMediaType {
			sboms = append(sboms, d)
		} else {
			images = append(images, d)
		}
	}
	if len(images) != 2 || !images[0].Platform.Equals(platforms[0]) || !images[1].Platform.Equals(platforms[1]) {
		t.Fatalf("images %+v, want linux/amd64 and linux/arm64", images)
	}
	if len(sboms) != 2 {
		t.Fatalf("%d SBOM manifests, want one per image", len(sboms))
	}
	for i, d := range sboms {
		if d.Platform == nil || d.Platform.OS != "unknown" || d.Platform.Architecture != "unknown" {
			t.Errorf("SBOM manifest platform %v, want unknown/unknown", d.Platform)
		}
		raw, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		am, err := raw.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if am.Subject == nil || am.Subject.Digest != images[i].Digest {
			t.Errorf("SBOM %d subject %v, want the %s image %s", i, am.Subject, images[i].Platform, images[i].Digest)
		}
		if am.ArtifactType != spdxMediaType || am.Config.MediaType != types.OCIEmptyJSON || len(am.Layers) != 1 || am.Layers[0].MediaType != spdxMediaType {
			t.Errorf("SBOM manifest %+v", am)
		}
	}
}

func TestImageConfig(t *testing.T) {
	f := image(t)
	idx, _ := readBack(t, f.tarball)
	for _, p := range platforms {
		cfg, err := imageFor(t, idx, p).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
			t.Errorf("%s: config for %s/%s", p, cfg.OS, cfg.Architecture)
		}
		if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/rego-injector"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
			t.Errorf("%s: entrypoint %q, cmd %q", p, c.Entrypoint, c.Cmd)
		}
		if c.User != "65532:65532" || c.WorkingDir != "/" {
			t.Errorf("%s: user %q, working directory %q", p, c.User, c.WorkingDir)
		}
		if !slices.Equal(c.Env, []string{"PATH=/usr/local/bin:/usr/bin:/bin"}) {
			t.Errorf("%s: env %q", p, c.Env)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.version":  f.spec.Version,
			"org.opencontainers.image.revision": f.spec.Revision,
			"org.opencontainers.image.source":   f.spec.Source,
			"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
		} {
			if c.Labels[k] != want {
				t.Errorf("%s: label %s = %q, want %q", p, k, c.Labels[k], want)
			}
		}
		if !cfg.Created.Equal(f.spec.Created) || len(cfg.History) != 2 || len(cfg.RootFS.DiffIDs) != 2 {
			t.Errorf("%s: created %s, %d history entries, %d layers", p, cfg.Created, len(cfg.History), len(cfg.RootFS.DiffIDs))
		}
	}
}

// file is an entry of an image's filesystem.
type file struct {
	mode     int64
	uid, gid int
	body     []byte
}

// files flattens img's layers.
func files(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	fs := map[string]file{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fs["/"+strings.TrimSuffix(h.Name, "/")] = file{mode: h.Mode, uid: h.Uid, gid: h.Gid, body: b}
	}
}

func TestImageFiles(t *testing.T) {
	f := image(t)
	idx, _ := readBack(t, f.tarball)
	for _, p := range platforms {
		fs := files(t, imageFor(t, idx, p))
		var paths []string
		for path := range fs {
			paths = append(paths, path)
		}
		slices.Sort(paths)
		want := []string{"/etc", "/etc/group", "/etc/nsswitch.conf", "/etc/passwd", "/home", "/home/nonroot", "/root", "/tmp",
			"/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/rego-injector", "/usr/local/share", "/usr/local/share/rego-injector",
			"/usr/local/share/rego-injector/sbom.spdx.json"}
		if !slices.Equal(paths, want) {
			t.Errorf("%s: files\n%q\nwant\n%q", p, paths, want)
		}
		if !strings.Contains(string(fs["/etc/passwd"].body), "\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n") ||
			!strings.HasPrefix(string(fs["/etc/passwd"].body), "root:x:0:0:") {
			t.Errorf("%s: /etc/passwd\n%s", p, fs["/etc/passwd"].body)
		}
		if !strings.Contains(string(fs["/etc/group"].body), "\nnonroot:x:65532:\n") {
			t.Errorf("%s: /etc/group\n%s", p, fs["/etc/group"].body)
		}
		if tmp := fs["/tmp"]; tmp.mode != 0o1777 || tmp.uid != 0 {
			t.Errorf("%s: /tmp mode %o owner %d, want 1777 root", p, tmp.mode, tmp.uid)
		}
		if home := fs["/home/nonroot"]; home.mode != 0o700 || home.uid != 65532 || home.gid != 65532 {
			t.Errorf("%s: /home/nonroot mode %o owner %d:%d, want 700 65532:65532", p, home.mode, home.uid, home.gid)
		}
		bin := fs["/usr/local/bin/rego-injector"]
		if bin.mode != 0o755 || bin.uid != 0 || !bytes.Equal(bin.body, f.binaries[p.Architecture]) {
			t.Errorf("%s: binary mode %o owner %d, %d bytes; want 755 root, the %d bytes built", p, bin.mode, bin.uid, len(bin.body), len(f.binaries[p.Architecture]))
		}
	}
}

// TestBinaryRuns runs the binary of the image for this machine's platform.
func TestBinaryRuns(t *testing.T) {
	f := image(t)
	host := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if !slices.ContainsFunc(platforms, host.Equals) {
		t.Skipf("no image for %s", host)
	}
	idx, _ := readBack(t, f.tarball)
	path := filepath.Join(t.TempDir(), "rego-injector")
	if err := os.WriteFile(path, files(t, imageFor(t, idx, host))["/usr/local/bin/rego-injector"].body, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), path, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", path, err, out)
	}
	if want := "rego-injector " + f.spec.Version + "\n"; string(out) != want {
		t.Errorf("version printed %q, want %q", out, want)
	}
}

func TestSBOM(t *testing.T) {
	f := image(t)
	idx, _ := readBack(t, f.tarball)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range platforms {
		inImage := files(t, imageFor(t, idx, p))["/usr/local/share/rego-injector/sbom.spdx.json"].body
		art, err := idx.Image(m.Manifests[len(platforms)+i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := art.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		referred, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(inImage, referred) {
			t.Errorf("%s: the SBOM in the image and the one referring to it differ", p)
		}
		var doc spdxDocument
		if err := json.Unmarshal(inImage, &doc); err != nil {
			t.Fatalf("%s: SBOM: %v", p, err)
		}
		if doc.SPDXVersion != "SPDX-2.3" || doc.SPDXID != "SPDXRef-DOCUMENT" || doc.CreationInfo.Created != "2026-01-02T03:04:05Z" {
			t.Errorf("%s: SBOM header %+v", p, doc)
		}
		pkgs := map[string]spdxPackage{}
		ids := map[string]bool{}
		for _, pkg := range doc.Packages {
			pkgs[pkg.Name] = pkg
			if ids[pkg.SPDXID] || len(pkg.ExternalRefs) != 1 || !strings.HasPrefix(pkg.ExternalRefs[0].ReferenceLocator, "pkg:golang/") {
				t.Errorf("%s: package %+v: duplicate ID or no purl", p, pkg)
			}
			ids[pkg.SPDXID] = true
		}
		main := doc.Packages[0]
		sum := sha256.Sum256(f.binaries[p.Architecture])
		if main.VersionInfo != f.spec.Version || len(main.Checksums) != 1 || main.Checksums[0].ChecksumValue != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: main package %+v, want version %s and the binary's SHA-256", p, main, f.spec.Version)
		}
		if !strings.Contains(main.Comment, "GOARCH="+p.Architecture) || !strings.Contains(main.Comment, "CGO_ENABLED=0") || !strings.Contains(main.Comment, "-trimpath=true") {
			t.Errorf("%s: build settings %q", p, main.Comment)
		}
		if doc.Relationships[0] != (spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", main.SPDXID}) {
			t.Errorf("%s: first relationship %+v", p, doc.Relationships[0])
		}
		if len(doc.Relationships) != len(doc.Packages) {
			t.Errorf("%s: %d relationships for %d packages", p, len(doc.Relationships), len(doc.Packages))
		}
		if std := pkgs["stdlib"]; !strings.HasPrefix(std.VersionInfo, "1.") {
			t.Errorf("%s: stdlib %+v", p, std)
		}
		if !f.real {
			continue
		}
		if main.Name != "github.com/rego-injector/rego-injector/cmd/rego-injector" {
			t.Errorf("%s: main package %s", p, main.Name)
		}
		for _, module := range []string{"github.com/open-policy-agent/opa", "golang.org/x/crypto/x509roots/fallback", "k8s.io/client-go"} {
			if got, want := pkgs[module].VersionInfo, required(t, module); got != want {
				t.Errorf("%s: SBOM has %s at %q, go.mod requires %s", p, module, got, want)
			}
		}
	}
}

// required is the version of module go.mod requires.
func required(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == module {
			return fields[1]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

func TestReproducible(t *testing.T) {
	f := image(t)
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := build(f.spec, again, imageName, io.Discard); err != nil {
		t.Fatal(err)
	}
	first, second := digestOf(t, f.tarball), digestOf(t, again)
	if first != second {
		t.Errorf("two builds of the same binaries differ: %s and %s", first, second)
	}
	a, _ := readBack(t, f.tarball)
	b, _ := readBack(t, again)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("index digests %s and %s", da, db)
	}
}

func digestOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestWrongPlatform(t *testing.T) {
	f := image(t)
	s := f.spec
	s.Binaries = []binary{{Platform: platforms[1], Path: f.spec.Binaries[0].Path}}
	if _, err := buildIndex(s); !errors.Is(err, ErrPlatform) {
		t.Errorf("an amd64 binary given as arm64: %v, want %v", err, ErrPlatform)
	}
}

// TestPush pushes the tarball to a registry on 127.0.0.1 (go-containerregistry's implementation of
// the distribution API, with the OCI 1.1 referrers API) and reads it back.
func TestPush(t *testing.T) {
	f := image(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/platform/rego-injector:v0.0.0-test"
	digest, err := push(t.Context(), f.tarball, ref, false)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := readBack(t, f.tarball)
	if want, _ := local.Digest(); digest != want {
		t.Errorf("push returned %s, the layout holds %s", digest, want)
	}
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	remoteIdx, err := remote.Index(tag, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := remoteIdx.Digest(); got != digest {
		t.Errorf("the registry serves index %s, pushed %s", got, digest)
	}
	for _, p := range platforms {
		img, err := remote.Image(tag, remote.WithContext(t.Context()), remote.WithPlatform(p))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := img.Digest()
		want, _ := imageFor(t, local, p).Digest()
		if got != want {
			t.Errorf("%s: the registry resolves %s, the layout holds %s", p, got, want)
		}
		referrers, err := remote.Referrers(tag.Context().Digest(want.String()), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := referrers.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		// This registry lists a referrer under its configuration's media type (the empty one), where
		// the referrers API asks for the manifest's artifactType: read the manifest.
		if len(rm.Manifests) != 1 {
			t.Fatalf("%s: referrers %+v, want one SBOM", p, rm.Manifests)
		}
		sbom, err := remote.Image(tag.Context().Digest(rm.Manifests[0].Digest.String()), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if sm, err := sbom.Manifest(); err != nil || sm.ArtifactType != spdxMediaType || sm.Subject == nil || sm.Subject.Digest != want {
			t.Errorf("%s: referrer %+v (%v), want an SPDX SBOM of %s", p, sm, err, want)
		}
	}
}
