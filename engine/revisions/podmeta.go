package revisions

import (
	"bytes"
	"encoding/json"
)

// podMeta reads a pod's namespace and labels. It decodes the object's fields in order and stops
// after metadata, which the apiserver sends before the spec: a large pod's containers are never
// read. Anything it cannot read is left empty (the injector refuses a pod that does not decode,
// with the reason).
func podMeta(raw []byte) (namespace string, labels map[string]string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", nil
		}
		if key != "metadata" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return "", nil
			}
			continue
		}
		var meta struct {
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		}
		if dec.Decode(&meta) != nil {
			return "", nil
		}
		return meta.Namespace, meta.Labels
	}
	return "", nil
}
