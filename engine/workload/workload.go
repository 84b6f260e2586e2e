// Package workload finds the pod inside Kubernetes objects and names the controller that owns it.
package workload

import (
	"maps"
	"strings"
)

// Owner names the controller at the top of a pod's owner chain.
type Owner struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// OwnerOf returns the top controller of a pod, read from its metadata: the controlling owner
// reference, lifted from a ReplicaSet to its Deployment when the pod-template-hash shows that a
// Deployment made the ReplicaSet. It returns nil for a pod without a controller.
func OwnerOf(pod map[string]any) *Owner {
	meta, _ := pod["metadata"].(map[string]any)
	refs, _ := meta["ownerReferences"].([]any)
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		if controller, _ := ref["controller"].(bool); !controller {
			continue
		}
		o := &Owner{}
		o.APIVersion, _ = ref["apiVersion"].(string)
		o.Kind, _ = ref["kind"].(string)
		o.Name, _ = ref["name"].(string)
		if o.Kind == "ReplicaSet" {
			labels, _ := meta["labels"].(map[string]any)
			if hash, _ := labels["pod-template-hash"].(string); hash != "" && strings.HasSuffix(o.Name, "-"+hash) {
				return &Owner{APIVersion: "apps/v1", Kind: "Deployment", Name: strings.TrimSuffix(o.Name, "-"+hash)}
			}
		}
		return o
	}
	return nil
}

// templatePaths maps each workload kind to where its pod template sits. A Pod is its own template.
var templatePaths = map[string][]string{
	"Pod":                   nil,
	"Deployment":            {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// IsWorkload reports whether kind carries a pod template this package knows how to find.
func IsWorkload(kind string) bool {
	_, ok := templatePaths[kind]
	return ok
}

// Template is the pod inside a workload object, lifted out as a Pod so that it can be injected like
// one, and put back with Apply.
type Template struct {
	obj  map[string]any
	path []string
	// lentNamespace is set when the template had no namespace and was given the workload's.
	lentNamespace bool
	// Pod is the pod template as a Pod object, in the workload's namespace.
	Pod map[string]any
	// Owner is the workload itself, or nil for a bare Pod.
	Owner *Owner
}

// PodTemplate lifts the pod template out of obj. ok is false when obj is not a workload or has no
// template.
func PodTemplate(obj map[string]any) (t *Template, ok bool) {
	kind, _ := obj["kind"].(string)
	path, known := templatePaths[kind]
	if !known {
		return nil, false
	}
	if kind == "Pod" {
		return &Template{obj: obj, Pod: obj}, true
	}
	cur := obj
	for _, key := range path {
		next, ok := cur[key].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	meta, _ := obj["metadata"].(map[string]any)
	podMeta := map[string]any{}
	if m, ok := cur["metadata"].(map[string]any); ok {
		podMeta = m
	}
	lent := false
	if ns, ok := meta["namespace"]; ok {
		if _, set := podMeta["namespace"]; !set {
			podMeta = maps.Clone(podMeta)
			podMeta["namespace"] = ns
			lent = true
		}
	}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": podMeta}
	if spec, ok := cur["spec"]; ok {
		pod["spec"] = spec
	}
	owner := &Owner{Kind: kind}
	owner.APIVersion, _ = obj["apiVersion"].(string)
	owner.Name, _ = meta["name"].(string)
	return &Template{obj: obj, path: path, lentNamespace: lent, Pod: pod, Owner: owner}, true
}

// Apply returns a copy of the workload with its pod template replaced by pod's metadata and spec.
// The namespace PodTemplate lent the pod is not written into the template.
func (t *Template) Apply(pod map[string]any) map[string]any {
	if t.path == nil {
		return pod
	}
	out := maps.Clone(t.obj)
	cur := out
	for _, key := range t.path {
		next := maps.Clone(cur[key].(map[string]any))
		cur[key] = next
		cur = next
	}
	if meta, ok := pod["metadata"].(map[string]any); ok {
		if t.lentNamespace {
			meta = maps.Clone(meta)
			delete(meta, "namespace")
		}
		if len(meta) > 0 || cur["metadata"] != nil {
			cur["metadata"] = meta
		}
	}
	if spec, ok := pod["spec"]; ok {
		cur["spec"] = spec
	}
	return out
}
