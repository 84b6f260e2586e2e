package injector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Offline builds the Admission that the webhook would have received had pod been created by owner in
// namespace: a CREATE request, so that the command line gets the webhook's answer.
func Offline(pod map[string]any, namespace string, owner *workload.Owner) (Admission, error) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return Admission{}, fmt.Errorf("encode the pod: %w", err)
	}
	meta, _ := pod["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		namespace = ns
	}
	req := &admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name:      name,
		Namespace: namespace,
		Operation: admissionv1.Create,
	}
	req.Object.Raw = raw
	return Admission{Raw: raw, Request: req, Owner: owner}, nil
}

// ObjectAdmission finds the pod inside a workload object (or a bare Pod) and builds the Admission
// the webhook would have received for it, as the offline user (WithOfflineUser); ok is false for
// kinds that carry no pod.
func (i *Injector) ObjectAdmission(obj map[string]any, namespace string) (t *workload.Template, in Admission, ok bool, err error) {
	if t, ok = workload.PodTemplate(obj); !ok {
		return nil, Admission{}, false, nil
	}
	if in, err = Offline(t.Pod, namespace, t.Owner); err != nil {
		return t, in, true, err
	}
	in.Request.UserInfo = i.offlineUser
	return t, in, true, nil
}

// InjectObject injects the pod inside a workload object (or a bare Pod). ok is false for kinds that
// carry no pod, which are left alone. The returned object is obj itself when nothing changed.
func (i *Injector) InjectObject(ctx context.Context, obj map[string]any, namespace string) (out map[string]any, res Result, ok bool, err error) {
	t, in, ok, err := i.ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return obj, Result{}, ok, err
	}
	res, err = i.Inject(ctx, in)
	if err != nil || res.Pod == nil {
		return obj, res, true, err
	}
	return t.Apply(res.Pod), res, true, nil
}

// TraceObject writes the evaluation trace of the decision on the pod inside obj to w; ok is false
// for kinds that carry no pod.
func (i *Injector) TraceObject(ctx context.Context, obj map[string]any, namespace string, w io.Writer) (ok bool, err error) {
	_, in, ok, err := i.ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return ok, err
	}
	return true, i.Trace(ctx, in, w)
}

// ValidateObject runs the validating policy on the pod inside obj, as the webhook would when that
// pod is created; ok is false for kinds that carry no pod.
func (i *Injector) ValidateObject(ctx context.Context, obj map[string]any, namespace string) (v policy.Verdict, ok bool, err error) {
	_, in, ok, err := i.ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return v, ok, err
	}
	res, err := i.Validate(ctx, in)
	return res.Verdict, true, err
}
