// Package patch diffs the pod as the apiserver sent it against the injected pod into a JSON patch.
package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mattbaird/jsonpatch"
)

// ErrRemovesUserData is returned when a patch would remove a field from the pod it was not asked to.
var ErrRemovesUserData = errors.New("patch would remove fields of the pod")

// Create returns the JSON patch (RFC 6902) that turns original, the raw JSON the apiserver sent, into
// mutated. The diff runs on the raw bytes, so fields the Kubernetes Go types do not know survive.
// Unless allowRemove is set (the pod is being re-injected and the old sidecar stripped), a patch
// that removes anything is refused: it would delete the user's data. Operations come in a stable
// order: by the path of the object or list they change, keeping mattbaird/jsonpatch's order within
// one list. An empty patch is returned as nil.
func Create(original []byte, mutated map[string]any, allowRemove bool) ([]byte, error) {
	after, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encode the injected pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(original, after)
	if err != nil {
		return nil, fmt.Errorf("diff the pod: %w", err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if !allowRemove {
		for _, op := range ops {
			if op.Operation == "remove" {
				return nil, fmt.Errorf("%w: remove %s", ErrRemovesUserData, op.Path)
			}
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return less(ops[i].Path, ops[j].Path) })
	// Encoded here rather than by the library's MarshalJSON, which does not escape paths.
	enc := make([]operation, len(ops))
	for i, op := range ops {
		enc[i] = operation{Op: op.Operation, Path: op.Path}
		if op.Operation != "remove" {
			enc[i].Value = &ops[i].Value
		}
	}
	out, err := json.Marshal(enc)
	if err != nil {
		return nil, fmt.Errorf("encode the patch: %w", err)
	}
	return out, nil
}

type operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value *any   `json:"value,omitempty"`
}

// less orders operations by the object or list they change; members of one object by name. Within
// one list the diff's own order is kept (the sort is stable): indexes there depend on it.
func less(a, b string) bool {
	pa, ka := split(a)
	pb, kb := split(b)
	if pa != pb {
		return pa < pb
	}
	if isIndex(ka) || isIndex(kb) {
		return false
	}
	return ka < kb
}

func split(path string) (parent, key string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

func isIndex(key string) bool {
	if key == "-" {
		return true
	}
	if key == "" {
		return false
	}
	for _, r := range key {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
