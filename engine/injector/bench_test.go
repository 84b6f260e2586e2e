package injector

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/admission"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/patch"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/render"
)

// The benchmark pods: small (one container), typical (three containers with env, probes and
// volumes, ~4 KB) and large (20 containers, 1,000 env vars).
var benchPods = []string{"small", "typical", "large"}

// compileAt compiles the embedded default bundle, relabelled to revision rev when rev is set.
func compileAt(tb testing.TB, rev string) *policy.Policy {
	tb.Helper()
	bd, err := regoinjector.DefaultBundle()
	if err != nil {
		tb.Fatal(err)
	}
	if rev != "" {
		bd.Manifest.Revision = rev
	}
	p, err := policy.Compile(context.Background(), bd)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func benchInjector(b testing.TB, opts ...Option) *Injector {
	b.Helper()
	inj := New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}}, opts...)
	if err := inj.Activate(compileAt(b, "")); err != nil {
		b.Fatal(err)
	}
	return inj
}

func benchRequest(b testing.TB, name string) *admissionv1.AdmissionRequest {
	b.Helper()
	raw, err := os.ReadFile("testdata/bench/" + name + ".json")
	if err != nil {
		b.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID:       "bench",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "shop",
		Operation: admissionv1.Create,
	}
	req.Object.Raw = raw
	return req
}

func benchReview(b *testing.B, req *admissionv1.AdmissionRequest) []byte {
	b.Helper()
	review := admissionv1.AdmissionReview{Request: req}
	review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkStages measures each step of one mutate call on its own.
func BenchmarkStages(b *testing.B) {
	inj := benchInjector(b)
	ctx := context.Background()
	for _, name := range benchPods {
		req := benchRequest(b, name)
		body := benchReview(b, req)
		e, err := inj.evaluation(ctx, Admission{Raw: req.Object.Raw, Request: req})
		if err != nil {
			b.Fatal(err)
		}
		_, podValue, err := decodeObject(req.Object.Raw)
		if err != nil {
			b.Fatal(err)
		}
		d, err := e.rev.policy.Decide(ctx, e.input)
		if err != nil || !d.Inject {
			b.Fatalf("decision %+v, %v", d, err)
		}
		typed, err := typedPod(req.Object.Raw, nil, false)
		if err != nil {
			b.Fatal(err)
		}
		data := render.Data{Pod: typed, Namespace: e.namespace, Owner: e.owner, Values: d.Values, Variant: d.Variant, Revision: "r"}
		partial, err := e.rev.templates.Render(d.Variant, data)
		if err != nil {
			b.Fatal(err)
		}
		mutated := inject.Writable(e.pod)
		if err := inject.Apply(mutated, partial, inject.Status{Variant: d.Variant, Revision: "r"}); err != nil {
			b.Fatal(err)
		}

		b.Run(fmt.Sprintf("decode/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := admission.Decode(body); err != nil {
					b.Fatal(err)
				}
				if _, _, err := decodeObject(req.Object.Raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("input/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := input(req, podValue, nil, e.namespace, e.owner, "r", "", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decision/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.rev.policy.Decide(ctx, e.input); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("render/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := typedPod(req.Object.Raw, nil, false); err != nil {
					b.Fatal(err)
				}
				if _, err := e.rev.templates.Render(d.Variant, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("merge/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := inject.Writable(e.pod)
				p, _ := e.rev.templates.Render(d.Variant, data)
				if err := inject.Apply(m, p, inject.Status{Variant: d.Variant, Revision: "r"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("patch/%s", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := patch.Create(e.pod, mutated, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
