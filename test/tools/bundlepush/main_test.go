package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/open-policy-agent/opa/v1/bundle"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/test/registry"
)

// TestPush pushes the default bundle to a real registry: the manifest has the media types OPA's
// downloader looks for, the layer is the file byte for byte, pushing it again gives the same
// digest, and rego-injector's OCI source downloads it.
func TestPush(t *testing.T) {
	reg := registry.ForTest(t, registry.Options{})

	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = "pushed-1"
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "default.tar.gz")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := reg.Addr + "/rego-injector/bundle:v1"
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{file, ref}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "pushed "+file+" to "+ref+"@sha256:") {
		t.Errorf("output %q", out.String())
	}
	first := out.String()
	out.Reset()
	if code := run(t.Context(), []string{file, ref}, &out, &errOut); code != 0 || out.String() != first {
		t.Errorf("pushing the same bundle again: exit %d, %q, before %q", code, out.String(), first)
	}

	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(parsed, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" ||
		m.Layers[0].Digest.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest %+v; want an OCI manifest, an OCI image config and one tar+gzip layer with digest sha256:%x", m, sum)
	}

	src, err := policy.ParseSource("oci+http://"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if err := src.Download(t.Context(), time.Second, time.Second, "", func(b *bundle.Bundle, err error) {
		if err != nil {
			t.Errorf("download: %v", err)
			return
		}
		select {
		case got <- b.Manifest.Revision:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case rev := <-got:
		if rev != "pushed-1" {
			t.Errorf("downloaded revision %q", rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pushed bundle was not downloaded in 10 s")
	}

	for _, args := range [][]string{{file}, {"-plain-http"}, {file, "registry.invalid/no-tag"}} {
		if code := run(t.Context(), args, &out, &errOut); code == 0 {
			t.Errorf("%q: exit 0", args)
		}
	}
}
