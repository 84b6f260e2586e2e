// Package events reports what the webhook did to a pod as Kubernetes Events on the pod's owner, or
// on its namespace when it has none, without ever delaying the admission.
package events

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Reasons of the events, as `kubectl get events --field-selector reason=...` finds them.
const (
	ReasonInjected        = "Injected"
	ReasonSkipped         = "InjectionSkipped"
	ReasonOverrideRefused = "OverrideRefused"
	ReasonDenied          = "InjectionDenied"
)

// quietCodes are skip codes that say nothing about the pod itself, only about its namespace or the
// request: a pod in a namespace that never asked for sidecars gets no event.
var quietCodes = []string{"operation", "excluded_namespace", "namespace_not_enabled", "namespace_disabled", "already_injected"}

// Outcome is one mutating admission, as the events report it.
type Outcome struct {
	// Namespace is the pod's namespace; Pod its names and controller.
	Namespace string
	Pod       workload.Metadata
	Revision  string
	// Rev and Tag name the revision that answered and the tag that chose it, when revisions are named.
	Rev, Tag string
	Decision policy.Decision
	// Injected is true when the answer carried a patch.
	Injected bool
}

// Recorder turns outcomes into events. Recording queues the outcome and returns at once; a full
// queue, or a closed recorder, drops it. A nil *Recorder records nothing.
type Recorder struct {
	queue       chan Outcome
	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster
	log         *slog.Logger
	stop        chan struct{}
	stopOnce    sync.Once
	done        chan struct{}
}

// queueLength bounds the outcomes waiting for the recorder's goroutine.
const queueLength = 512

// New starts a recorder that writes events through client, as the named component on host.
// client-go's correlator aggregates repeated events and rate-limits each object's.
func New(client kubernetes.Interface, component, host string, log *slog.Logger) *Recorder {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return NewWithRecorder(b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: host}), b, log)
}

// NewWithRecorder starts a recorder writing to rec; b, when not nil, is shut down by Close.
func NewWithRecorder(rec record.EventRecorder, b record.EventBroadcaster, log *slog.Logger) *Recorder {
	r := &Recorder{queue: make(chan Outcome, queueLength), recorder: rec, broadcaster: b, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// Record queues o; it never blocks, and may be called during or after Close.
func (r *Recorder) Record(o Outcome) {
	if r == nil {
		return
	}
	select {
	case <-r.stop:
		return
	default:
	}
	select {
	case r.queue <- o:
	default:
		r.log.Debug("event queue full; outcome dropped", "namespace", o.Namespace)
	}
}

// Close records what is queued, then stops the recorder. The queue is never closed, so that a
// late Record cannot panic; what it queues is dropped.
func (r *Recorder) Close() {
	if r == nil {
		return
	}
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
	if r.broadcaster != nil {
		r.broadcaster.Shutdown()
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	for {
		select {
		case o := <-r.queue:
			r.emit(o)
		case <-r.stop:
			for {
				select {
				case o := <-r.queue:
					r.emit(o)
				default:
					return
				}
			}
		}
	}
}

func (r *Recorder) emit(o Outcome) {
	d := o.Decision
	ref, pod := subject(o)
	for _, ro := range d.RefusedOverrides {
		r.recorder.Eventf(ref, corev1.EventTypeWarning, ReasonOverrideRefused, "%s: %s", pod, ro.Reason)
	}
	switch {
	case len(d.Deny) > 0:
		r.recorder.Eventf(ref, corev1.EventTypeWarning, ReasonDenied, "%s refused: %s", pod, strings.Join(d.Deny, "; "))
	case o.Injected:
		r.recorder.Eventf(ref, corev1.EventTypeNormal, ReasonInjected, "%s injected with variant %s at %s", pod, d.Variant, servedBy(o))
	case !d.Inject && !slices.Contains(quietCodes, d.Code):
		reason := ""
		if len(d.Reasons) > 0 {
			reason = d.Reasons[len(d.Reasons)-1]
		}
		r.recorder.Eventf(ref, corev1.EventTypeNormal, ReasonSkipped, "%s not injected (%s): %s", pod, d.Code, reason)
	}
}

// subject is what the event is about: the pod's controller when it names one, else its namespace;
// and how the message names the pod.
func subject(o Outcome) (*corev1.ObjectReference, string) {
	name := "pod " + o.Pod.Name
	if o.Pod.Name == "" {
		name = fmt.Sprintf("pod %s*", o.Pod.GenerateName)
	}
	if c := o.Pod.Controller; c != nil {
		return &corev1.ObjectReference{APIVersion: c.APIVersion, Kind: c.Kind, Name: c.Name, Namespace: o.Namespace, UID: types.UID(c.UID)}, name
	}
	// The namespace is named as its own namespace too, so the event is listed with the pod's.
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: o.Namespace, Namespace: o.Namespace}, name
}

// servedBy names what injected the pod: "revision abc", or "revision canary (tag prod), bundle
// revision abc" when revisions are named.
func servedBy(o Outcome) string {
	switch {
	case o.Rev == "":
		return "revision " + o.Revision
	case o.Tag == "":
		return fmt.Sprintf("revision %s, bundle revision %s", o.Rev, o.Revision)
	}
	return fmt.Sprintf("revision %s (tag %s), bundle revision %s", o.Rev, o.Tag, o.Revision)
}
