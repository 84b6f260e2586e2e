package injector

import (
	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// input builds the policy input documented in docs/policy-authors.md:
//
//	{"request": …, "object": …, "oldObject": …, "namespace": …, "owner": …, "injector": …, "revision": …}
//
// pod and oldPod (nil for none) are decodeObject's: the pod is not converted again.
func input(req *admissionv1.AdmissionRequest, pod, oldPod ast.Value, ns cluster.Namespace, owner *workload.Owner, revision, ownNamespace string, sel *Selection) (ast.Value, error) {
	in := map[string]any{
		"request": requestInput(req),
		"namespace": map[string]any{
			"name":        ns.Name,
			"labels":      ns.Labels,
			"annotations": ns.Annotations,
		},
		"injector": map[string]any{
			"revision":  revision,
			"namespace": ownNamespace,
		},
	}
	if sel != nil {
		in["revision"] = sel.inputValue()
	}
	if owner != nil {
		in["owner"] = map[string]any{"apiVersion": owner.APIVersion, "kind": owner.Kind, "name": owner.Name}
	}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return nil, err
	}
	obj := v.(ast.Object)
	obj.Insert(ast.InternedTerm("object"), ast.NewTerm(pod))
	if oldPod != nil {
		obj.Insert(ast.InternedTerm("oldObject"), ast.NewTerm(oldPod))
	}
	return obj, nil
}

// requestInput is the AdmissionRequest without its object and oldObject, which the input carries
// once, at the top level.
func requestInput(req *admissionv1.AdmissionRequest) map[string]any {
	user := map[string]any{
		"username": req.UserInfo.Username,
		"uid":      req.UserInfo.UID,
		"groups":   nonNil(req.UserInfo.Groups),
	}
	if len(req.UserInfo.Extra) > 0 {
		extra := make(map[string]any, len(req.UserInfo.Extra))
		for k, v := range req.UserInfo.Extra {
			extra[k] = []string(v)
		}
		user["extra"] = extra
	}
	dryRun := req.DryRun != nil && *req.DryRun
	return map[string]any{
		"uid":         string(req.UID),
		"kind":        map[string]any{"group": req.Kind.Group, "version": req.Kind.Version, "kind": req.Kind.Kind},
		"resource":    map[string]any{"group": req.Resource.Group, "version": req.Resource.Version, "resource": req.Resource.Resource},
		"subResource": req.SubResource,
		"name":        req.Name,
		"namespace":   req.Namespace,
		"operation":   string(req.Operation),
		"userInfo":    user,
		"dryRun":      dryRun,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
