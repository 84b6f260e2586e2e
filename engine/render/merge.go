package render

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// Merge merges partial b over partial a, as Istio merges the templates of inject.istio.io/templates
// in order, the later winning: labels and annotations by key, containers and init containers by
// name (a strategic merge, so b's env, ports and mounts join a's by their keys), volumes and image
// pull secrets by name, and rewritten probes by container. Neither argument is changed; a nil a
// gives b.
func Merge(a, b Partial) Partial {
	if a == nil {
		return b
	}
	out := Partial(runtime.DeepCopyJSON(a))
	for section, v := range b {
		bm, ok := v.(map[string]any)
		am, isMap := out[section].(map[string]any)
		if !ok || !isMap {
			out[section] = runtime.DeepCopyJSONValue(v)
			continue
		}
		if section == "rewrite" { // by container, b's probes replace a's; annotations by key
			for field, bv := range bm {
				if field == "annotations" {
					am[field] = mergeKeys(am[field], bv)
					continue
				}
				am[field] = mergeNamed(am[field], bv, func(x, y map[string]any) map[string]any {
					return mergeKeys(x, y)
				})
			}
			continue
		}
		for field, bv := range bm {
			switch field {
			case "labels", "annotations":
				am[field] = mergeKeys(am[field], bv)
			case "containers", "initContainers":
				am[field] = mergeNamed(am[field], bv, func(x, y map[string]any) map[string]any {
					m, err := strategicpatch.StrategicMergeMapPatch(x, y, corev1.Container{})
					if err != nil { // y is not a container: it replaces x
						return y
					}
					return m
				})
			case "volumes", "imagePullSecrets":
				am[field] = mergeNamed(am[field], bv, func(_, y map[string]any) map[string]any { return y })
			default:
				am[field] = runtime.DeepCopyJSONValue(bv)
			}
		}
	}
	return out
}

// mergeKeys is map a with map b's keys set over it; a is not changed.
func mergeKeys(a, b any) map[string]any {
	am, _ := a.(map[string]any)
	merged := maps.Clone(am)
	if merged == nil {
		merged = map[string]any{}
	}
	bm, _ := b.(map[string]any)
	maps.Copy(merged, bm)
	return merged
}

// mergeNamed merges list b into list a by the items' names: an item of b whose name a has is
// combined with it, the others are appended in b's order.
func mergeNamed(a, b any, combine func(x, y map[string]any) map[string]any) []any {
	al, _ := runtime.DeepCopyJSONValue(a).([]any)
	bl, _ := runtime.DeepCopyJSONValue(b).([]any)
	for _, item := range bl {
		y, _ := item.(map[string]any)
		name, _ := y["name"].(string)
		found := false
		for i, x := range al {
			xm, _ := x.(map[string]any)
			if n, _ := xm["name"].(string); n == name && name != "" {
				al[i] = combine(xm, y)
				found = true
				break
			}
		}
		if !found {
			al = append(al, item)
		}
	}
	return al
}
