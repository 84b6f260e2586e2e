package events_test

import (
	"log/slog"
	"strings"
	"testing"

	"k8s.io/client-go/tools/record"

	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/policy"
)

const replica = `{"metadata":{"generateName":"web-7d9f-","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","uid":"u-1","controller":true}]}}`

func TestOutcomes(t *testing.T) {
	for name, tc := range map[string]struct {
		o    events.Outcome
		want []string
	}{
		"injected": {events.Outcome{Namespace: "shop", Raw: []byte(replica), Revision: "r1", Injected: true, Decision: policy.Decision{Inject: true, Variant: "native"}},
			[]string{"Normal Injected pod web-7d9f-* injected with variant native at revision r1 involvedObject{kind=ReplicaSet,apiVersion=apps/v1}"}},
		"skipped": {events.Outcome{Namespace: "shop", Raw: []byte(`{"metadata":{"name":"db"}}`), Decision: policy.Decision{Code: "opted_out", Reasons: []string{"pod label says false"}}},
			[]string{"Normal InjectionSkipped pod db not injected (opted_out): pod label says false involvedObject{kind=Namespace,apiVersion=v1}"}},
		"quiet": {events.Outcome{Namespace: "shop", Raw: []byte(replica), Decision: policy.Decision{Code: "namespace_not_enabled", Reasons: []string{"r"}}}, nil},
		"refused and ignored": {events.Outcome{Namespace: "shop", Raw: []byte(replica), Injected: true, Revision: "r1",
			Decision: policy.Decision{Inject: true, Variant: "sidecar", RefusedOverrides: []policy.RefusedOverride{{Annotation: "sidecar.istio.io/proxyImage", Value: "evil/proxy", Reason: `pod annotation sidecar.istio.io/proxyImage="evil/proxy" names an image outside the allowed registries`}}}},
			[]string{
				`Warning OverrideRefused pod web-7d9f-*: pod annotation sidecar.istio.io/proxyImage="evil/proxy" names an image outside the allowed registries involvedObject{kind=ReplicaSet,apiVersion=apps/v1}`,
				"Normal Injected pod web-7d9f-* injected with variant sidecar at revision r1 involvedObject{kind=ReplicaSet,apiVersion=apps/v1}",
			}},
		"denied": {events.Outcome{Namespace: "shop", Raw: []byte(replica), Decision: policy.Decision{Code: "override_refused", Deny: []string{"no"}}},
			[]string{"Warning InjectionDenied pod web-7d9f-* refused: no involvedObject{kind=ReplicaSet,apiVersion=apps/v1}"}},
	} {
		t.Run(name, func(t *testing.T) {
			fake := record.NewFakeRecorder(10)
			fake.IncludeObject = true
			r := events.NewWithRecorder(fake, nil, slog.New(slog.DiscardHandler))
			r.Record(tc.o)
			r.Close()
			close(fake.Events)
			var got []string
			for e := range fake.Events {
				got = append(got, e)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestRecordNeverBlocks: with the recorder stuck, recording returns at once and drops what does
// not fit.
func TestRecordNeverBlocks(t *testing.T) {
	fake := record.NewFakeRecorder(0) // unbuffered and never read: the recorder's goroutine blocks
	r := events.NewWithRecorder(fake, nil, slog.New(slog.DiscardHandler))
	o := events.Outcome{Namespace: "shop", Raw: []byte(replica), Injected: true, Decision: policy.Decision{Inject: true, Variant: "sidecar"}}
	for range 5000 {
		r.Record(o)
	}
	var nilRecorder *events.Recorder
	nilRecorder.Record(o)
}
