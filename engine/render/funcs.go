package render

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Funcs returns the function map templates are parsed with: sprig's hermetic functions (no
// environment, network, clock or randomness, so the same input always renders the same sidecar) and
// the functions below, documented in docs/templates.md.
func Funcs() template.FuncMap {
	fm := sprig.HermeticTxtFuncMap()
	for name := range fm {
		if nondeterministic(name) {
			delete(fm, name)
		}
	}
	fm["toYaml"] = toYAML
	fm["toJSON"] = toJSON
	fm["fromJSON"] = fromJSON
	fm["appendMultusNetwork"] = appendMultusNetwork
	fm["annotation"] = annotation
	fm["label"] = label
	fm["isset"] = isset
	fm["valueOrDefault"] = valueOrDefault
	fm["excludeInboundPort"] = excludeInboundPort
	fm["appProbers"] = appProbers
	fm["probeRewrites"] = probeRewrites
	// include is bound to each variant's template set by Parse.
	fm["include"] = func(string, any) (string, error) { return "", nil }
	return fm
}

// nondeterministic reports whether a sprig function can give another answer for the same input
// (randomness, the clock, generated keys and salts): such functions would make re-injection change
// pods that need no change.
func nondeterministic(name string) bool {
	switch name {
	case "shuffle", "ago", "bcrypt", "htpasswd", "encryptAES", "uuidv4", "now", "unixEpoch", "dateInZone", "date_in_zone", "htmlDate", "htmlDateInZone":
		return true
	}
	return strings.HasPrefix(name, "rand") || strings.HasPrefix(name, "gen")
}

// toJSON renders v as compact JSON.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toJSON: %w", err)
	}
	return string(b), nil
}

// fromJSON decodes s, JSON text, into maps, lists and scalars.
func fromJSON(s string) (any, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("fromJSON: %w", err)
	}
	return v, nil
}

// appendMultusNetwork adds network to a pod's Multus network list (annotation
// k8s.v1.cni.cncf.io/networks) unless it is there already, in the list's own form: a JSON list
// of objects or comma-separated names, as Istio's function of that name. A JSON list that does
// not parse is returned as it is (the apiserver's Multus then reports it).
func appendMultusNetwork(existing, network string) string {
	if strings.TrimSpace(existing) == "" {
		return network
	}
	if i := strings.LastIndex(existing, "]"); i >= 0 {
		var networks []map[string]any
		if err := json.Unmarshal([]byte(existing), &networks); err != nil {
			return existing
		}
		for _, n := range networks {
			if n["name"] == network {
				return existing
			}
		}
		entry, _ := json.Marshal(map[string]string{"name": network})
		if len(networks) == 0 { // "[]": Istio's would give "[, {...}]"
			return "[" + string(entry) + "]"
		}
		return existing[:i] + ", " + string(entry) + existing[i:]
	}
	for _, n := range strings.Split(existing, ",") {
		if strings.TrimSpace(n) == network {
			return existing
		}
	}
	return existing + ", " + network
}

// annotation returns the annotation key of obj (a pod or its metadata), or def when it is unset.
func annotation(obj any, key string, def any) (any, error) {
	meta, err := metaOf(obj, "annotation")
	if err != nil {
		return nil, err
	}
	if v, ok := meta.Annotations[key]; ok {
		return v, nil
	}
	return def, nil
}

// label returns the label key of obj (a pod or its metadata), or def when it is unset.
func label(obj any, key string, def any) (any, error) {
	meta, err := metaOf(obj, "label")
	if err != nil {
		return nil, err
	}
	if v, ok := meta.Labels[key]; ok {
		return v, nil
	}
	return def, nil
}

func metaOf(obj any, fn string) (*metav1.ObjectMeta, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, nil
	case corev1.Pod:
		return &o.ObjectMeta, nil
	case *metav1.ObjectMeta:
		return o, nil
	case metav1.ObjectMeta:
		return &o, nil
	default:
		return nil, fmt.Errorf("%s: want a pod or its metadata, got %T", fn, obj)
	}
}

// isset reports whether key is present in the map m (of any value type).
func isset(m any, key string) bool {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return false
	}
	return v.MapIndex(reflect.ValueOf(key).Convert(v.Type().Key())).IsValid()
}

// valueOrDefault returns v unless it is nil or the zero value of its type, else def.
func valueOrDefault(v, def any) any {
	if v == nil {
		return def
	}
	rv := reflect.ValueOf(v)
	if rv.IsZero() {
		return def
	}
	if (rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice) && rv.Len() == 0 {
		return def
	}
	return v
}

// excludeInboundPort adds port to the comma-separated list of ports, as Istio's template function
// of that name does: the list as it is when port is empty, 0 or already one of its items, else its
// items trimmed, empty ones dropped, and port last.
func excludeInboundPort(port any, list string) string {
	p := strings.TrimSpace(fmt.Sprint(port))
	if p == "" || p == "0" {
		return list
	}
	items := strings.Split(list, ",")
	if slices.Contains(items, p) {
		return list
	}
	var out []string
	for _, item := range items {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return strings.Join(append(out, p), ",")
}
