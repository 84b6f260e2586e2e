package webhook_test

import (
	"context"
	"os"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/webhook"
)

// benchRequest is the admission of the benchmark pod name (small, typical or large) kept with the
// injector's benchmarks.
func benchRequest(b *testing.B, name string) *admissionv1.AdmissionRequest {
	b.Helper()
	raw, err := os.ReadFile("../injector/testdata/bench/" + name + ".json")
	if err != nil {
		b.Fatal(err)
	}
	return fixture.Admission(raw, "shop", "").Request
}

// BenchmarkHandlers measures the full mutate and validate handlers, review in, response out: every
// admission evaluated, and, as mutate-memo, the same pod coming again (each replica of a workload).
func BenchmarkHandlers(b *testing.B) {
	labels := map[string]string{"istio-injection": "enabled"}
	p := fixture.Policy(b, "")
	inj := webhook.New(fixture.Injector(b, p, labels))
	memoised := webhook.New(fixture.Injector(b, p, labels, injector.WithMemo(256)))
	ctx := context.Background()
	for _, name := range []string{"small", "typical", "large"} {
		req := benchRequest(b, name)
		b.Run("mutate/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := inj.Mutating().Handle(ctx, req); resp.Patch == nil {
					b.Fatalf("no patch: %+v", resp.Result)
				}
			}
		})
		b.Run("mutate-memo/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := memoised.Mutating().Handle(ctx, req); resp.Patch == nil {
					b.Fatalf("no patch: %+v", resp.Result)
				}
			}
		})
		b.Run("validate-memo/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := memoised.Validating().Handle(ctx, req); !resp.Allowed {
					b.Fatalf("denied: %+v", resp.Result)
				}
			}
		})
		b.Run("validate/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := inj.Validating().Handle(ctx, req); !resp.Allowed {
					b.Fatalf("denied: %+v", resp.Result)
				}
			}
		})
	}
}
