// Package patch diffs the pod as the apiserver sent it against the injected pod into a JSON patch.
package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mattbaird/jsonpatch"
)

// ErrRemovesUserData is returned when a patch would remove a field from the pod it was not asked to.
var ErrRemovesUserData = errors.New("patch would remove fields of the pod")

// Create returns the JSON patch (RFC 6902) that turns original, the pod as decoded from the raw
// JSON the apiserver sent, into mutated. Both are JSON values (as encoding/json decodes them), so
// fields the Kubernetes Go types do not know survive untouched.
//
// Only what can have changed is diffed: objects and lists that mutated shares with original (as
// inject.Writable arranges) are skipped by identity, lists are trimmed of the items they share at
// either end, and mattbaird/jsonpatch diffs what remains. So a 20-container pod gaining a sidecar
// costs the sidecar, not 20 × 21 deep comparisons of containers.
//
// A patch that removes anything removable does not allow is refused: it would delete the user's
// data. Pass AnyRemoval when the pod is being re-injected (the old sidecar stripped), ProbeRemovals
// when probes were rewritten, nil for none. Operations come in a stable order. An empty patch is
// returned as nil.
func Create(original, mutated map[string]any, removable func(path string) bool) ([]byte, error) {
	var d differ
	d.object("", original, mutated, 0)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.ops) == 0 {
		return nil, nil
	}
	for _, op := range d.ops {
		if op.Op == "remove" && (removable == nil || !removable(op.Path)) {
			return nil, fmt.Errorf("%w: remove %s", ErrRemovesUserData, op.Path)
		}
	}
	out, err := json.Marshal(d.ops)
	if err != nil {
		return nil, fmt.Errorf("encode the patch: %w", err)
	}
	return out, nil
}

// AnyRemoval allows every removal.
func AnyRemoval(string) bool { return true }

// probePath matches a path inside a probe of a container or init container.
var probePath = regexp.MustCompile(`^/spec/(containers|initContainers)/[0-9]+/(readinessProbe|livenessProbe|startupProbe)/`)

// ProbeRemovals allows removals inside the probes of containers: a rewritten probe drops the
// handler it replaces (a tcpSocket that becomes an httpGet).
func ProbeRemovals(path string) bool { return probePath.MatchString(path) }

// RewriteRemovals allows what a template's rewrite section removes: inside probes (ProbeRemovals)
// and the pod's annotations of keys.
func RewriteRemovals(keys []string) func(string) bool {
	paths := make(map[string]bool, len(keys))
	for _, k := range keys {
		paths["/metadata/annotations/"+escape(k)] = true
	}
	return func(path string) bool { return ProbeRemovals(path) || paths[path] }
}

// operation is one JSON patch operation. It is encoded here rather than by the library's
// MarshalJSON, which does not escape paths.
type operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value *any   `json:"value,omitempty"`
}

// walkDepth is how deep the differ walks objects itself (the pod, its metadata and spec); below
// that, changed values go to mattbaird/jsonpatch whole.
const walkDepth = 2

type differ struct {
	ops []operation
	err error
}

// object diffs two objects member by member, in name order.
func (d *differ) object(path string, a, b map[string]any, depth int) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		av, inA := a[k]
		bv, inB := b[k]
		p := path + "/" + escape(k)
		switch {
		case !inB:
			d.ops = append(d.ops, operation{Op: "remove", Path: p})
		case !inA:
			d.ops = append(d.ops, operation{Op: "add", Path: p, Value: &bv})
		default:
			d.value(p, av, bv, depth+1)
		}
	}
}

// value diffs two values at path.
func (d *differ) value(path string, a, b any, depth int) {
	if same(a, b) {
		return
	}
	am, aIsMap := a.(map[string]any)
	bm, bIsMap := b.(map[string]any)
	if aIsMap && bIsMap && depth < walkDepth {
		d.object(path, am, bm, depth)
		return
	}
	al, aIsList := a.([]any)
	bl, bIsList := b.([]any)
	if aIsList && bIsList {
		d.list(path, al, bl)
		return
	}
	if aIsMap != bIsMap || aIsList != bIsList {
		// A change of kind is a replacement (the library assumes kinds match).
		d.ops = append(d.ops, operation{Op: "replace", Path: path, Value: &b})
		return
	}
	d.library(path, a, b, 0)
}

// list trims the items two lists share at either end and diffs the middles.
func (d *differ) list(path string, a, b []any) {
	pre := 0
	for pre < len(a) && pre < len(b) && same(a[pre], b[pre]) {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && same(a[len(a)-1-suf], b[len(b)-1-suf]) {
		suf++
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	switch {
	case len(am) == 0 && len(bm) == 0:
	case len(am) == 0: // only insertions: nothing to diff
		for k := range bm {
			d.ops = append(d.ops, operation{Op: "add", Path: path + "/" + strconv.Itoa(pre+k), Value: &bm[k]})
		}
	case len(bm) == 0: // only deletions, last first so that indexes hold
		for k := len(am) - 1; k >= 0; k-- {
			d.ops = append(d.ops, operation{Op: "remove", Path: path + "/" + strconv.Itoa(pre+k)})
		}
	default:
		if o, ok := alignedByName(am, bm); ok {
			// The same named items (containers), some changed, with new ones before or after them:
			// insert the new ones and diff the changed ones in place, so that no item is removed
			// and added again.
			for k := range o {
				d.ops = append(d.ops, operation{Op: "add", Path: path + "/" + strconv.Itoa(pre+k), Value: &bm[k]})
			}
			for k := range am {
				// Walk each changed item's members: members it shares with the original by
				// identity (a container's env list, say) are skipped, and only the members that
				// changed (a rewritten probe) go to the library.
				p := path + "/" + strconv.Itoa(pre+o+k)
				if x, ok := am[k].(map[string]any); ok {
					if y, ok := bm[o+k].(map[string]any); ok {
						d.object(p, x, y, walkDepth)
						continue
					}
				}
				d.value(p, am[k], bm[o+k], walkDepth)
			}
			for k := o + len(am); k < len(bm); k++ {
				d.ops = append(d.ops, operation{Op: "add", Path: path + "/" + strconv.Itoa(pre+k), Value: &bm[k]})
			}
			return
		}
		d.library(path, am, bm, pre)
	}
}

// alignedByName reports whether the items of a, all objects with names, appear in b in the same
// order as a run starting at offset o, so that b is a with items added before and after.
func alignedByName(a, b []any) (o int, ok bool) {
	if len(a) == 0 || len(b) < len(a) {
		return 0, false
	}
	name := func(v any) string {
		m, _ := v.(map[string]any)
		s, _ := m["name"].(string)
		return s
	}
	first := name(a[0])
	if first == "" {
		return 0, false
	}
	for o = 0; o+len(a) <= len(b); o++ {
		if name(b[o]) != first {
			continue
		}
		for k := range a {
			if n := name(a[k]); n == "" || n != name(b[o+k]) {
				return 0, false
			}
		}
		return o, true
	}
	return 0, false
}

// library diffs a and b with mattbaird/jsonpatch and rebases its operations onto path; offset
// shifts the first index of operations on a list middle back to the whole list.
func (d *differ) library(path string, a, b any, offset int) {
	if d.err != nil {
		return
	}
	aj, err := json.Marshal(a)
	if err != nil {
		d.err = fmt.Errorf("diff %s: %w", path, err)
		return
	}
	bj, err := json.Marshal(b)
	if err != nil {
		d.err = fmt.Errorf("diff %s: %w", path, err)
		return
	}
	ops, err := jsonpatch.CreatePatch(aj, bj)
	if err != nil {
		d.err = fmt.Errorf("diff %s: %w", path, err)
		return
	}
	sort.SliceStable(ops, func(i, j int) bool { return less(ops[i].Path, ops[j].Path) })
	for i := range ops {
		rel := ops[i].Path
		if offset != 0 {
			first, rest, _ := strings.Cut(strings.TrimPrefix(rel, "/"), "/")
			n, err := strconv.Atoi(first)
			if err != nil {
				d.err = fmt.Errorf("diff %s: unexpected path %q in a list diff", path, rel)
				return
			}
			rel = "/" + strconv.Itoa(n+offset)
			if rest != "" {
				rel += "/" + rest
			}
		}
		op := operation{Op: ops[i].Operation, Path: path + rel}
		if op.Op != "remove" {
			op.Value = &ops[i].Value
		}
		d.ops = append(d.ops, op)
	}
}

// same reports whether a and b are the same value without comparing their contents: the same
// object or list (shared by inject.Writable), or equal scalars.
func same(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		return ok && reflect.ValueOf(av).UnsafePointer() == reflect.ValueOf(bv).UnsafePointer()
	case []any:
		bv, ok := b.([]any)
		return ok && len(av) == len(bv) && (len(av) == 0 || &av[0] == &bv[0])
	case string, float64, bool, nil, json.Number:
		return a == b
	}
	return false
}

var rfc6901 = strings.NewReplacer("~", "~0", "/", "~1")

func escape(key string) string { return rfc6901.Replace(key) }

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
	return key == "-" || (key != "" && !slices.ContainsFunc([]byte(key), func(c byte) bool { return c < '0' || c > '9' }))
}
