// Package workload finds the pod inside Kubernetes objects and names the controller that owns it.
package workload

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Owner names the controller at the top of a pod's owner chain.
type Owner struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// OwnerOf returns the top controller of a pod, read from its metadata: the controlling owner
// reference, lifted to the workload that made it when the pod shows which one did. A ReplicaSet is
// lifted to its Deployment when the pod-template-hash label ends the ReplicaSet's name, and to its
// Argo Rollout when the rollouts-pod-template-hash label does; a ReplicationController is lifted to
// its OpenShift DeploymentConfig when the pod's openshift.io/deployment-config.name annotation and a
// deployment number make up its name. It returns nil for a pod without a controller.
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
		if top := lift(o, meta); top != nil {
			return top
		}
		return o
	}
	return nil
}

// lift returns the workload that made the controller o of a pod with metadata meta, or nil when
// the pod does not show one.
func lift(o *Owner, meta map[string]any) *Owner {
	labels, _ := meta["labels"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	switch o.Kind {
	case "ReplicaSet":
		if hash, _ := labels["rollouts-pod-template-hash"].(string); hash != "" && strings.HasSuffix(o.Name, "-"+hash) {
			return &Owner{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: strings.TrimSuffix(o.Name, "-"+hash)}
		}
		if hash, _ := labels["pod-template-hash"].(string); hash != "" && strings.HasSuffix(o.Name, "-"+hash) {
			return &Owner{APIVersion: "apps/v1", Kind: "Deployment", Name: strings.TrimSuffix(o.Name, "-"+hash)}
		}
	case "ReplicationController":
		// OpenShift names a DeploymentConfig's ReplicationControllers <name>-<version>.
		dc, _ := annotations["openshift.io/deployment-config.name"].(string)
		version, found := strings.CutPrefix(o.Name, dc+"-")
		if dc != "" && found && version != "" && strings.Trim(version, "0123456789") == "" {
			return &Owner{APIVersion: "apps.openshift.io/v1", Kind: "DeploymentConfig", Name: dc}
		}
	}
	return nil
}

// kind is a workload kind this package knows: the API groups that serve it and where its pod
// template sits.
type kind struct {
	groups []string
	path   []string
}

var specTemplate = []string{"spec", "template"}

// kinds are the workload kinds this package knows, by kind. A Pod is its own template.
var kinds = map[string]kind{
	"Pod":                   {groups: []string{""}},
	"ReplicationController": {groups: []string{""}, path: specTemplate},
	"Deployment":            {groups: []string{"apps", "extensions"}, path: specTemplate},
	"ReplicaSet":            {groups: []string{"apps", "extensions"}, path: specTemplate},
	"DaemonSet":             {groups: []string{"apps", "extensions"}, path: specTemplate},
	"StatefulSet":           {groups: []string{"apps"}, path: specTemplate},
	"Job":                   {groups: []string{"batch", "extensions"}, path: specTemplate},
	"CronJob":               {groups: []string{"batch"}, path: []string{"spec", "jobTemplate", "spec", "template"}},
	// OpenShift's DeploymentConfig, served as apiVersion v1 before OpenShift had API groups.
	"DeploymentConfig": {groups: []string{"apps.openshift.io", ""}, path: specTemplate},
	// Argo Rollouts' Rollout, unless it takes its pod template from another workload
	// (spec.workloadRef, see NoTemplate).
	"Rollout": {groups: []string{"argoproj.io"}, path: specTemplate},
}

// knownKind returns what this package knows of obj's kind. An object without an apiVersion is
// matched by its kind alone.
func knownKind(obj map[string]any) (k kind, ok bool) {
	name, _ := obj["kind"].(string)
	if k, ok = kinds[name]; !ok {
		return k, false
	}
	apiVersion, set := obj["apiVersion"].(string)
	if !set {
		return k, true
	}
	return k, slices.Contains(k.groups, group(apiVersion))
}

// group is the API group of an apiVersion: "" for the core group's "v1".
func group(apiVersion string) string {
	g, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return ""
	}
	return g
}

// NoTemplate says why obj, an object of a known workload kind, has no pod template to inject, so
// that a report shows it rather than passing over it: an Argo Rollout whose pods take their
// template from another workload (spec.workloadRef), or a workload without its template. It
// returns "" when obj has a pod template or is not of a known workload kind.
func NoTemplate(obj map[string]any) string {
	k, ok := knownKind(obj)
	if !ok || k.path == nil {
		return ""
	}
	if _, ok := PodTemplate(obj); ok {
		return ""
	}
	name, _ := obj["kind"].(string)
	spec, _ := obj["spec"].(map[string]any)
	if ref, ok := spec["workloadRef"].(map[string]any); ok && name == "Rollout" {
		refKind, _ := ref["kind"].(string)
		refName, _ := ref["name"].(string)
		return fmt.Sprintf("spec.workloadRef: the Rollout's pods take their template from %s/%s, so the Rollout holds no pod template to inject; inject %s/%s instead",
			refKind, refName, refKind, refName)
	}
	return fmt.Sprintf("no %s: there is no pod template to inject", strings.Join(k.path, "."))
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
	// Note, when set, says how the template was found: for a kind this package does not know, that
	// its spec.template was taken as a pod template.
	Note string
}

// PodTemplate lifts the pod template out of obj: a Pod itself, the template of a known workload
// kind (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob,
// OpenShift's DeploymentConfig, Argo's Rollout), or the spec.template of any other object when it
// looks like a pod template, a spec with a list of containers (Knative Services, OpenKruise
// CloneSets, other custom workloads); Note then says so. ok is false when obj carries no pod
// template.
func PodTemplate(obj map[string]any) (t *Template, ok bool) {
	kindName, _ := obj["kind"].(string)
	k, known := knownKind(obj)
	if known && k.path == nil {
		return &Template{obj: obj, Pod: obj}, true
	}
	path, note := k.path, ""
	if !known {
		if !looksLikePodTemplate(obj) {
			return nil, false
		}
		apiVersion, _ := obj["apiVersion"].(string)
		path = specTemplate
		note = fmt.Sprintf("kind %s (apiVersion %s) is not a known workload kind: its spec.template is taken as a pod template", kindName, apiVersion)
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
	owner := &Owner{Kind: kindName}
	owner.APIVersion, _ = obj["apiVersion"].(string)
	owner.Name, _ = meta["name"].(string)
	return &Template{obj: obj, path: path, lentNamespace: lent, Pod: pod, Owner: owner, Note: note}, true
}

// looksLikePodTemplate reports whether obj's spec.template has a spec with a list of containers.
func looksLikePodTemplate(obj map[string]any) bool {
	spec, _ := obj["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	podSpec, _ := tmpl["spec"].(map[string]any)
	_, ok := podSpec["containers"].([]any)
	return ok
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
