package inject

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/rego-injector/rego-injector/engine/render"
)

// Apply merges the rendered partial pod into pod, in place, and writes the status annotation:
//   - containers are appended after the pod's own, but for one with a postStart hook, which goes
//     first, so that its hook holds the others back until it is ready (Istio's
//     holdApplicationUntilProxyStarts). Init containers go before the pod's own when one
//     of them is a native sidecar (restartPolicy: Always), so that the pod's init containers run in
//     the mesh; otherwise after them, so that the pod's init containers do not run behind a traffic
//     redirect with no proxy to answer it. Istio orders them the same way;
//   - a container the pod already has under the sidecar's name keeps its own fields over the
//     template's (a strategic merge, the pod's side winning), but for an image of "auto", which
//     the template's fills in (Istio's gateway convention);
//   - an item of the template's that holds only a name is a place, not a container (a container
//     needs an image): among init containers that go first, the pod's own init container of that
//     name moves there (Istio's init-containers-before-proxy); a name the pod does not have, or a
//     place elsewhere, is ignored;
//   - volumes, image pull secrets, labels and annotations are added where the pod has none of that
//     name; the pod's own win;
//   - the partial's rewrite section replaces probes of the pod's own containers (the app's probes
//     sent through the proxy's agent), the probes they replace kept in st.Rewritten, and sets or
//     removes annotations whatever the pod has (Istio's metrics merge), the values they replace
//     kept in st.RewrittenAnnotations;
//   - st lists what was added, so that Strip can take it away again.
//
// pod must hold only JSON values (as decoded by encoding/json); Apply changes only what Writable
// copies, so pod may be Writable's copy of a pod that must stay as it is.
func Apply(pod map[string]any, partial render.Partial, st Status) error {
	meta := child(pod, "metadata")
	spec := child(pod, "spec")
	pmeta, _ := partial["metadata"].(map[string]any)
	pspec, _ := partial["spec"].(map[string]any)

	var err error
	if st.Rewritten, err = rewriteProbes(spec, partial["rewrite"]); err != nil {
		return err
	}
	st.RewrittenAnnotations = rewriteAnnotations(meta, partial["rewrite"])
	if st.Containers, err = mergeContainers(spec, "containers", list(pspec, "containers"), false, &st); err != nil {
		return err
	}
	if st.InitContainers, err = mergeContainers(spec, "initContainers", list(pspec, "initContainers"), hasNativeSidecar(list(pspec, "initContainers")), &st); err != nil {
		return err
	}
	st.Volumes = addNamed(spec, "volumes", list(pspec, "volumes"))
	st.ImagePullSecrets = addNamed(spec, "imagePullSecrets", list(pspec, "imagePullSecrets"))
	st.Labels = addKeys(meta, "labels", pmeta["labels"])
	st.Annotations = addKeys(meta, "annotations", pmeta["annotations"])

	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	child(meta, "annotations")[StatusAnnotation] = string(b)
	return nil
}

// mergeContainers merges the template's containers into spec[field] and returns their names. The
// pod's own containers it merges with are kept in st.Replaced. With prepend, the template's new
// containers go before the pod's, with the pod's containers the template places among them.
func mergeContainers(spec map[string]any, field string, tmpl []any, prepend bool, st *Status) ([]string, error) {
	if len(tmpl) == 0 {
		return nil, nil
	}
	existing, _ := spec[field].([]any)
	index := make(map[string]int, len(existing))
	for i, c := range existing {
		index[nameOf(c)] = i
	}
	var names []string
	var added, head []any   // head: the added ones in the template's order, with the pod's it places
	var placed map[int]bool // the pod's containers the template placed, by index; rarely any
	for _, c := range tmpl {
		tc, ok := c.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: template item is not an object", field)
		}
		name := nameOf(tc)
		i, present := index[name]
		if len(tc) == 1 && name != "" { // a place for the pod's own container, never a container
			if present && prepend && !placed[i] {
				if placed == nil {
					placed = map[int]bool{}
				}
				placed[i] = true
				head = append(head, existing[i])
			}
			continue
		}
		names = append(names, name)
		if !present {
			added = append(added, tc)
			head = append(head, tc)
			continue
		}
		user, _ := existing[i].(map[string]any)
		if st.Replaced == nil {
			st.Replaced = map[string]map[string]any{}
		}
		if st.Replaced[field] == nil {
			st.Replaced[field] = map[string]any{}
		}
		st.Replaced[field][name] = user
		over := runtime.DeepCopyJSON(user)
		if over["image"] == "auto" {
			delete(over, "image") // "image: auto" asks for the template's image, as with Istio
		}
		merged, err := strategicpatch.StrategicMergeMapPatch(tc, over, corev1.Container{})
		if err != nil {
			return nil, fmt.Errorf("%s %q: merge the pod's own container over the template's: %w", field, name, err)
		}
		existing[i] = map[string]any(merged)
	}
	switch {
	case prepend && len(added) > 0:
		rest := make([]any, 0, len(existing)-len(placed))
		for i, c := range existing {
			if !placed[i] {
				rest = append(rest, c)
			}
		}
		existing = append(head, rest...)
	case len(added) > 0:
		var first []any
		if field == "containers" {
			first = slices.DeleteFunc(slices.Clone(added), func(c any) bool { return !holds(c) })
			added = slices.DeleteFunc(added, holds)
		}
		existing = append(append(first, existing...), added...)
	}
	spec[field] = existing
	return names, nil
}

// rewriteProbes replaces the probes the rewrite section names, in copies of the containers, and
// returns the probes replaced. A rewrite of a container the pod does not have is an error.
func rewriteProbes(spec map[string]any, section any) (map[string]map[string]map[string]any, error) {
	lists, _ := section.(map[string]any)
	var out map[string]map[string]map[string]any
	for _, field := range []string{"containers", "initContainers"} {
		rewrites, _ := lists[field].([]any)
		existing, _ := spec[field].([]any)
		for _, r := range rewrites {
			rewrite, _ := r.(map[string]any)
			name := nameOf(rewrite)
			i := slices.IndexFunc(existing, func(c any) bool { return nameOf(c) == name })
			if i < 0 {
				return nil, fmt.Errorf("rewrite: the pod has no %s %q", strings.TrimSuffix(field, "s"), name)
			}
			own, ok := existing[i].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rewrite: %s %q is not an object", strings.TrimSuffix(field, "s"), name)
			}
			container := maps.Clone(own)
			kept := map[string]any{}
			for _, probe := range rewrittenProbes {
				if p, ok := rewrite[probe]; ok {
					kept[probe] = container[probe] // nil when the container had none
					container[probe] = p
				}
			}
			existing[i] = container
			if out == nil {
				out = map[string]map[string]map[string]any{}
			}
			if out[field] == nil {
				out[field] = map[string]map[string]any{}
			}
			out[field][name] = kept
		}
	}
	return out, nil
}

// holds reports whether a container has a postStart hook: the kubelet starts the containers after
// it only once the hook has run.
func holds(c any) bool {
	m, _ := c.(map[string]any)
	lifecycle, _ := m["lifecycle"].(map[string]any)
	return lifecycle["postStart"] != nil
}

// hasNativeSidecar reports whether one of the init containers is a native sidecar.
func hasNativeSidecar(initContainers []any) bool {
	return slices.ContainsFunc(initContainers, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["restartPolicy"] == "Always"
	})
}

// rewriteAnnotations sets (or, for null, removes) the annotations the rewrite section names, the
// pod's own included, and returns them as they were (nil for one the pod did not have).
func rewriteAnnotations(meta map[string]any, section any) map[string]*string {
	lists, _ := section.(map[string]any)
	rewrites, _ := lists["annotations"].(map[string]any)
	if len(rewrites) == 0 {
		return nil
	}
	ann := child(meta, "annotations")
	out := make(map[string]*string, len(rewrites))
	for k, v := range rewrites {
		if old, ok := ann[k].(string); ok {
			out[k] = &old
		} else {
			out[k] = nil
		}
		if v == nil {
			delete(ann, k)
		} else {
			ann[k] = v
		}
	}
	if len(ann) == 0 {
		delete(meta, "annotations")
	}
	return out
}

// addNamed appends the template's items whose names the pod does not use yet; it returns their names.
func addNamed(spec map[string]any, field string, tmpl []any) []string {
	if len(tmpl) == 0 {
		return nil
	}
	existing, _ := spec[field].([]any)
	var names []string
	for _, item := range tmpl {
		name := nameOf(item)
		if slices.ContainsFunc(existing, func(e any) bool { return nameOf(e) == name }) {
			continue
		}
		existing = append(existing, item)
		names = append(names, name)
	}
	if len(names) > 0 {
		spec[field] = existing
	}
	return names
}

// addKeys sets the template's keys that meta[field] does not have yet; it returns them, sorted.
func addKeys(meta map[string]any, field string, tmpl any) []string {
	m, _ := tmpl.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	var keys []string
	for k, v := range m {
		target := child(meta, field)
		if _, taken := target[k]; taken {
			continue
		}
		target[k] = v
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func nameOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["name"].(string)
	return s
}

func list(m map[string]any, key string) []any {
	l, _ := m[key].([]any)
	return l
}

// child returns m[key] as an object, creating it when absent.
func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}
