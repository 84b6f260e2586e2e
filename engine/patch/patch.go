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
	From  string `json:"from,omitempty"`
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
		at, ok := alignedByName(am, bm)
		if !ok { // the pod's own items in another order (placed among the sidecar's): move them
			am = d.reorderByName(path, pre, am, bm)
			at, ok = alignedByName(am, bm)
		}
		if ok {
			// The same named items (containers), some changed, with new ones among them: insert
			// the new ones and diff the changed ones in place, so that no item is removed and
			// added again.
			next := 0
			for k := range bm {
				p := path + "/" + strconv.Itoa(pre+k)
				if next == len(am) || at[next] != k {
					d.ops = append(d.ops, operation{Op: "add", Path: p, Value: &bm[k]})
					continue
				}
				// Walk each changed item's members: members it shares with the original by
				// identity (a container's env list, say) are skipped, and only the members that
				// changed (a rewritten probe) go to the library.
				if x, ok := am[next].(map[string]any); ok {
					if y, ok := bm[k].(map[string]any); ok {
						d.object(p, x, y, walkDepth)
						next++
						continue
					}
				}
				d.value(p, am[next], bm[k], walkDepth)
				next++
			}
			return
		}
		d.library(path, am, bm, pre)
	}
}

// reorderByName returns a's items in the order their names have in b, with the move operations
// that do that (a pod's own init container placed before the sidecar, say), so that the items can
// then be diffed in place rather than removed and added again. It returns a as it is, with no
// operations, unless a's items all have distinct names that b has too.
func (d *differ) reorderByName(path string, pre int, a, b []any) []any {
	pos := make(map[string]int, len(b))
	for k, item := range b {
		if n := itemName(item); n != "" {
			if _, dup := pos[n]; dup {
				return a
			}
			pos[n] = k
		}
	}
	seen := make(map[string]bool, len(a))
	for _, item := range a {
		n := itemName(item)
		if _, ok := pos[n]; !ok || seen[n] {
			return a
		}
		seen[n] = true
	}
	cur := slices.Clone(a)
	want := slices.Clone(a)
	slices.SortStableFunc(want, func(x, y any) int { return pos[itemName(x)] - pos[itemName(y)] })
	for k := range want {
		if itemName(cur[k]) == itemName(want[k]) {
			continue
		}
		j := k + slices.IndexFunc(cur[k:], func(item any) bool { return itemName(item) == itemName(want[k]) })
		d.ops = append(d.ops, operation{Op: "move", From: path + "/" + strconv.Itoa(pre+j), Path: path + "/" + strconv.Itoa(pre+k)})
		item := cur[j]
		copy(cur[k+1:j+1], cur[k:j])
		cur[k] = item
	}
	return cur
}

func itemName(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// alignedByName reports whether the items of a, all objects with names, appear in b in the same
// order, so that b is a with items added among them; at gives the index in b of each item of a.
func alignedByName(a, b []any) (at []int, ok bool) {
	k := 0
	for _, item := range a {
		n := itemName(item)
		if n == "" {
			return nil, false
		}
		for k < len(b) && itemName(b[k]) != n {
			k++
		}
		if k == len(b) {
			return nil, false
		}
		at = append(at, k)
		k++
	}
	return at, len(a) > 0
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
