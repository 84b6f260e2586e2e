package inject

import (
	"encoding/json"
	"fmt"
)

// StatusAnnotation records on an injected pod what was injected, so that it can be stripped again.
const StatusAnnotation = "rego-injector.io/status"

// Status is the content of StatusAnnotation.
type Status struct {
	Variant          string   `json:"variant"`
	Revision         string   `json:"revision"`
	Containers       []string `json:"containers,omitempty"`
	InitContainers   []string `json:"initContainers,omitempty"`
	Volumes          []string `json:"volumes,omitempty"`
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	Labels           []string `json:"labels,omitempty"`
	Annotations      []string `json:"annotations,omitempty"`
	// Replaced keeps, by list ("containers", "initContainers") and name, the pod's own containers
	// that had a sidecar's name and were merged with the template, as they were before: Strip puts
	// them back rather than deleting them.
	Replaced map[string]map[string]any `json:"replaced,omitempty"`
	Reasons  []string                  `json:"reasons,omitempty"`
}

// ReadStatus returns the pod's injection status; ok is false when the pod carries none.
func ReadStatus(pod map[string]any) (st Status, ok bool, err error) {
	raw, present := annotations(pod)[StatusAnnotation]
	if !present {
		return Status{}, false, nil
	}
	s, isString := raw.(string)
	if !isString {
		return Status{}, true, fmt.Errorf("annotation %s is not a string", StatusAnnotation)
	}
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return Status{}, true, fmt.Errorf("annotation %s: %w", StatusAnnotation, err)
	}
	return st, true, nil
}

func annotations(pod map[string]any) map[string]any {
	meta, _ := pod["metadata"].(map[string]any)
	a, _ := meta["annotations"].(map[string]any)
	return a
}
