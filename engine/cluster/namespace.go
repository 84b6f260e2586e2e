package cluster

import (
	"context"
	"fmt"
	"maps"
	"strings"
)

// Namespace is what policy and templates know of a pod's namespace.
type Namespace struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Namespaces looks up namespaces by name.
type Namespaces interface {
	// Namespace returns the named namespace. A namespace that does not exist is an error for a live
	// cluster; offline sources answer with a namespace that has no labels.
	Namespace(ctx context.Context, name string) (Namespace, error)
	// Synced reports whether the source is ready to answer.
	Synced() bool
}

// Static answers offline, without a cluster: every namespace carries the same labels and
// annotations, the ones given on the command line.
type Static struct {
	Labels      map[string]string
	Annotations map[string]string
}

// Namespace implements Namespaces.
func (s Static) Namespace(_ context.Context, name string) (Namespace, error) {
	return Namespace{Name: name, Labels: copyOrEmpty(s.Labels), Annotations: copyOrEmpty(s.Annotations)}, nil
}

// Synced implements Namespaces; a static source is always ready.
func (Static) Synced() bool { return true }

// ParseLabels parses "k=v,k2=v2" into a map. Empty input is an empty map.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", pair)
		}
		out[k] = v
	}
	return out, nil
}

func copyOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
