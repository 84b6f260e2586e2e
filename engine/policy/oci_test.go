package policy_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/test/registry"
)

// TestOCIDownloadReportsChangesOnly polls a bundle in a real registry: the bundle is reported once,
// the same bundle pushed again is not reported at all (its layer digest is the one delivered), and a
// new one is.
func TestOCIDownloadReportsChangesOnly(t *testing.T) {
	reg := registry.ForTest(t, registry.Options{})
	tarball := func(revision string) []byte {
		t.Helper()
		b, err := regoinjector.DefaultBundle()
		if err != nil {
			t.Fatal(err)
		}
		b.Manifest.Revision = revision
		var buf bytes.Buffer
		if err := bundle.NewWriter(&buf).Write(*b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	publish := func(data []byte) {
		t.Helper()
		if _, err := registry.Push(t.Context(), reg.Addr+"/injector:v1", data, false); err != nil {
			t.Fatal(err)
		}
	}
	r1 := tarball("r1")
	var mu sync.Mutex
	var got []string
	reported := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	publish(r1)
	src, err := policy.ParseSource("oci+http://"+reg.Addr+"/injector:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Download(t.Context(), time.Second, time.Second, "", func(b *bundle.Bundle, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			got = append(got, "error: "+err.Error())
			return
		}
		got = append(got, b.Manifest.Revision)
	})
	if err != nil {
		t.Fatal(err)
	}
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); len(reported()) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reported %q, want %d reports", reported(), n)
			}
		}
	}
	wait(1)
	publish(r1)
	time.Sleep(3500 * time.Millisecond) // three polls
	publish(tarball("r2"))
	wait(2)
	if r := reported(); len(r) != 2 || r[0] != "r1" || r[1] != "r2" {
		t.Errorf("reported %q, want [r1 r2]: an unchanged bundle is not reported", r)
	}
}
