package inject

import (
	"maps"
	"slices"
)

// Strip removes from pod, in place, everything its status annotation says was injected, and the
// annotation itself. It reports whether there was anything to strip. Lists and maps left empty by
// stripping are removed, as they were absent before injection.
func Strip(pod map[string]any) (bool, error) {
	st, ok, err := ReadStatus(pod)
	if err != nil || !ok {
		return false, err
	}
	meta, _ := pod["metadata"].(map[string]any)
	spec, _ := pod["spec"].(map[string]any)
	restoreProbes(spec, st.Rewritten)
	restoreNamed(spec, "containers", st.Containers, st.Replaced["containers"])
	restoreNamed(spec, "initContainers", st.InitContainers, st.Replaced["initContainers"])
	removeNamed(spec, "volumes", st.Volumes)
	removeNamed(spec, "imagePullSecrets", st.ImagePullSecrets)
	removeKeys(meta, "labels", st.Labels)
	removeKeys(meta, "annotations", append(st.Annotations, StatusAnnotation))
	restoreAnnotations(meta, st.RewrittenAnnotations)
	return true, nil
}

// restoreProbes puts back the probes a rewrite replaced, in copies of the containers; a probe a
// container did not have is removed again.
func restoreProbes(spec map[string]any, rewritten map[string]map[string]map[string]any) {
	for field, byName := range rewritten {
		items, ok := spec[field].([]any)
		if !ok {
			continue
		}
		for i, item := range items {
			probes, ok := byName[nameOf(item)]
			c, isObject := item.(map[string]any)
			if !ok || !isObject {
				continue
			}
			c = maps.Clone(c)
			for probe, before := range probes {
				if before == nil {
					delete(c, probe)
				} else {
					c[probe] = before
				}
			}
			items[i] = c
		}
	}
}

// restoreAnnotations puts back the annotations a rewrite replaced or removed.
func restoreAnnotations(meta map[string]any, before map[string]*string) {
	if len(before) == 0 || meta == nil {
		return
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	for k, v := range before {
		if v == nil {
			delete(ann, k)
		} else {
			ann[k] = *v
		}
	}
	if len(ann) == 0 {
		delete(meta, "annotations")
	} else {
		meta["annotations"] = ann
	}
}

// restoreNamed removes the named containers, putting back in place those the pod had before.
func restoreNamed(spec map[string]any, field string, names []string, before map[string]any) {
	if items, ok := spec[field].([]any); ok {
		for i, item := range items {
			if orig, replaced := before[nameOf(item)]; replaced {
				items[i] = orig
			}
		}
	}
	var remove []string
	for _, n := range names {
		if _, replaced := before[n]; !replaced {
			remove = append(remove, n)
		}
	}
	removeNamed(spec, field, remove)
}

func removeNamed(spec map[string]any, field string, names []string) {
	items, ok := spec[field].([]any)
	if !ok || len(names) == 0 {
		return
	}
	items = slices.DeleteFunc(items, func(item any) bool { return slices.Contains(names, nameOf(item)) })
	if len(items) == 0 {
		delete(spec, field)
		return
	}
	spec[field] = items
}

func removeKeys(meta map[string]any, field string, keys []string) {
	m, ok := meta[field].(map[string]any)
	if !ok {
		return
	}
	for _, k := range keys {
		delete(m, k)
	}
	if len(m) == 0 {
		delete(meta, field)
	}
}
