package inject

import "maps"

// Writable returns a copy of pod that Strip and Apply may change without touching pod: the parts
// they change (the pod, its metadata, labels, annotations and spec, and the spec's container,
// volume and pull-secret lists) are copied one level deep, everything else is shared. Unchanged
// containers of the result are the very same objects as in pod, so a diff can skip them by identity
// instead of comparing them.
func Writable(pod map[string]any) map[string]any {
	out := maps.Clone(pod)
	if meta, ok := pod["metadata"].(map[string]any); ok {
		meta = maps.Clone(meta)
		for _, k := range []string{"labels", "annotations"} {
			if m, ok := meta[k].(map[string]any); ok {
				meta[k] = maps.Clone(m)
			}
		}
		out["metadata"] = meta
	}
	if spec, ok := pod["spec"].(map[string]any); ok {
		spec = maps.Clone(spec)
		for _, k := range []string{"containers", "initContainers", "volumes", "imagePullSecrets"} {
			if l, ok := spec[k].([]any); ok {
				spec[k] = append([]any(nil), l...)
			}
		}
		out["spec"] = spec
	}
	return out
}
