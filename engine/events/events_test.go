package events_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"

	"github.com/rego-injector/rego-injector/engine/events"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

var replica = workload.MetadataOf([]byte(`{"metadata":{"generateName":"web-7d9f-","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","uid":"u-1","controller":true}]}}`))

func TestOutcomes(t *testing.T) {
	for name, tc := range map[string]struct {
		o    events.Outcome
		want []string
	}{
		"injected": {events.Outcome{Namespace: "shop", Pod: replica, Revision: "r1", Injected: true, Decision: policy.Decision{Inject: true, Variant: "native"}},
			[]string{"Normal Injected pod web-7d9f-* injected with variant native at revision r1 involvedObject{kind=ReplicaSet,apiVersion=apps/v1}"}},
		"skipped": {events.Outcome{Namespace: "shop", Pod: workload.Metadata{Name: "db"}, Decision: policy.Decision{Code: "opted_out", Reasons: []string{"pod label says false"}}},
			[]string{"Normal InjectionSkipped pod db not injected (opted_out): pod label says false involvedObject{kind=Namespace,apiVersion=v1}"}},
		"quiet": {events.Outcome{Namespace: "shop", Pod: replica, Decision: policy.Decision{Code: "namespace_not_enabled", Reasons: []string{"r"}}}, nil},
		"refused and ignored": {events.Outcome{Namespace: "shop", Pod: replica, Injected: true, Revision: "r1",
			Decision: policy.Decision{Inject: true, Variant: "sidecar", RefusedOverrides: []policy.RefusedOverride{{Annotation: "sidecar.istio.io/proxyImage", Value: "evil/proxy", Reason: `pod annotation sidecar.istio.io/proxyImage="evil/proxy" names an image outside the allowed registries`}}}},
			[]string{
				`Warning OverrideRefused pod web-7d9f-*: pod annotation sidecar.istio.io/proxyImage="evil/proxy" names an image outside the allowed registries involvedObject{kind=ReplicaSet,apiVersion=apps/v1}`,
				"Normal Injected pod web-7d9f-* injected with variant sidecar at revision r1 involvedObject{kind=ReplicaSet,apiVersion=apps/v1}",
			}},
		"denied": {events.Outcome{Namespace: "shop", Pod: replica, Decision: policy.Decision{Code: "override_refused", Deny: []string{"no"}}},
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
// not fit; recording during and after Close neither blocks nor panics.
func TestRecordNeverBlocks(t *testing.T) {
	fake := record.NewFakeRecorder(1)
	r := events.NewWithRecorder(fake, nil, slog.New(slog.DiscardHandler))
	o := events.Outcome{Namespace: "shop", Pod: replica, Injected: true, Decision: policy.Decision{Inject: true, Variant: "sidecar"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5000 { // the fake holds one event, so the recorder's goroutine is stuck after two
			r.Record(o)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked")
	}
	recorded := make(chan struct{})
	go func() { // drain, so that Close can record what is queued and return
		for range fake.Events {
		}
	}()
	go func() {
		defer close(recorded)
		for range 1000 {
			r.Record(o)
		}
	}()
	r.Close()
	r.Record(o)
	<-recorded
	var nilRecorder *events.Recorder
	nilRecorder.Record(o)
	nilRecorder.Close()
}
