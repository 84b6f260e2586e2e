package patch_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	evanphx "gopkg.in/evanphx/json-patch.v4"

	"github.com/rego-injector/rego-injector/engine/patch"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func apply(t *testing.T, doc, p []byte) map[string]any {
	t.Helper()
	return decode(t, string(applyBytes(t, doc, p)))
}

func TestCreate(t *testing.T) {
	for name, tc := range map[string]struct {
		before, after string
		allowRemove   bool
		wantErr       error
		want          string
	}{
		"no change": {before: `{"a":1}`, after: `{"a":1}`, want: "null"},
		"slash and tilde keys are escaped": {
			before: `{"metadata":{"annotations":{"x":"1"}}}`,
			after:  `{"metadata":{"annotations":{"x":"1","a/b":"2","c~d":"3","q\"uote":"4"}}}`,
			want:   `[{"op":"add","path":"/metadata/annotations/a~1b","value":"2"},{"op":"add","path":"/metadata/annotations/c~0d","value":"3"},{"op":"add","path":"/metadata/annotations/q\"uote","value":"4"}]`,
		},
		"prepend and append in lists": {
			before: `{"spec":{"containers":[{"name":"app"}],"initContainers":[{"name":"i"}]}}`,
			after:  `{"spec":{"containers":[{"name":"app"},{"name":"proxy"}],"initContainers":[{"name":"p"},{"name":"i"}]}}`,
			want:   `[{"op":"add","path":"/spec/containers/1","value":{"name":"proxy"}},{"op":"add","path":"/spec/initContainers/0","value":{"name":"p"}}]`,
		},
		"the pod's own item moved among added ones": {
			before: `{"spec":{"initContainers":[{"name":"a"},{"name":"b","x":1},{"name":"c"}]}}`,
			after:  `{"spec":{"initContainers":[{"name":"init"},{"name":"c"},{"name":"b","x":2},{"name":"proxy"},{"name":"a"}]}}`,
			want:   `[{"op":"move","from":"/spec/initContainers/2","path":"/spec/initContainers/0"},{"op":"move","from":"/spec/initContainers/2","path":"/spec/initContainers/1"},{"op":"add","path":"/spec/initContainers/0","value":{"name":"init"}},{"op":"replace","path":"/spec/initContainers/2/x","value":2},{"op":"add","path":"/spec/initContainers/3","value":{"name":"proxy"}}]`,
		},
		"remove refused":          {before: `{"a":1,"b":2}`, after: `{"a":1}`, wantErr: patch.ErrRemovesUserData},
		"kind changes":            {before: `{"spec":{"a":{"x":1},"b":"s"}}`, after: `{"spec":{"a":"now a string","b":{"y":2}}}`, want: `[{"op":"replace","path":"/spec/a","value":"now a string"},{"op":"replace","path":"/spec/b","value":{"y":2}}]`},
		"deep change":             {before: `{"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"}]}]}}`, after: `{"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"2"}]}]}}`, want: `[{"op":"replace","path":"/spec/containers/0/env/0/value","value":"2"}]`},
		"remove allowed on strip": {before: `{"a":1,"b":2}`, after: `{"a":1}`, allowRemove: true, want: `[{"op":"remove","path":"/b"}]`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := patch.Create(decode(t, tc.before), decode(t, tc.after), removable(tc.allowRemove))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "null" {
				if got != nil {
					t.Fatalf("got %s, want no patch", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Errorf("patch\n got %s\nwant %s", got, tc.want)
			}
			if applied := apply(t, []byte(tc.before), got); !reflect.DeepEqual(applied, decode(t, tc.after)) {
				t.Errorf("applied patch gives %v", applied)
			}
		})
	}
}

// TestCreateIsDeterministic: map iteration order must not leak into the patch.
func TestCreateIsDeterministic(t *testing.T) {
	before := `{"metadata":{"labels":{}},"spec":{}}`
	after := decode(t, `{"metadata":{"labels":{"a":"1","b":"2","c":"3","d":"4","e":"5"},"annotations":{"x":"1","y":"2"}},"spec":{"v":[1],"w":[2]}}`)
	first, err := patch.Create(decode(t, before), after, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		again, err := patch.Create(decode(t, before), after, nil)
		if err != nil || string(again) != string(first) {
			t.Fatalf("patch changed between runs:\n%s\n%s", first, again)
		}
	}
}

// FuzzCreate: for any two JSON objects, the patch applied by an independent implementation turns
// the first into the second. The second is also tried sharing the first's lists with items added
// at either end, as injection does.
func FuzzCreate(f *testing.F) {
	f.Add(`{"spec":{"containers":[{"name":"a"}]}}`, `{"spec":{"containers":[{"name":"a"},{"name":"b"}]},"metadata":{"labels":{"x/y":"1"}}}`)
	f.Add(`{"a":[1,2,3],"b":{"c":null}}`, `{"a":[0,1,2,3,4],"b":{"c":{"d":[]}}}`)
	f.Add(`{"a":[{"x":1},{"y":2}]}`, `{"a":[{"y":2}]}`)
	f.Add(`{"spec":{"initContainers":[{"name":"a"},{"name":"b","x":1}]}}`, `{"spec":{"initContainers":[{"name":"i"},{"name":"b","x":2},{"name":"p"},{"name":"a"}]}}`)
	f.Fuzz(func(t *testing.T, before, after string) {
		var a, b map[string]any
		if json.Unmarshal([]byte(before), &a) != nil || json.Unmarshal([]byte(after), &b) != nil || a == nil || b == nil {
			return
		}
		check := func(b map[string]any) {
			p, err := patch.Create(a, b, patch.AnyRemoval)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			want, _ := json.Marshal(b)
			if p == nil {
				got, _ := json.Marshal(a)
				if !jsonEqualBytes(got, want) {
					t.Fatalf("no patch, but %s != %s", got, want)
				}
				return
			}
			ap, _ := json.Marshal(a)
			got := applyBytes(t, ap, p)
			if !jsonEqualBytes(got, want) {
				t.Fatalf("patch %s\nturns %s\ninto %s\nnot  %s", p, ap, got, want)
			}
		}
		check(b)
		// Shared lists with items added at both ends, as inject.Writable and Apply leave them.
		shared := map[string]any{}
		for k, v := range a {
			if l, ok := v.([]any); ok {
				v = append(append([]any{"head"}, l...), "tail")
			}
			shared[k] = v
		}
		check(shared)
	})
}

func applyBytes(t *testing.T, doc, p []byte) []byte {
	t.Helper()
	dp, err := evanphx.DecodePatch(p)
	if err != nil {
		t.Fatalf("decode %s: %v", p, err)
	}
	out, err := dp.Apply(doc)
	if err != nil {
		t.Fatalf("apply %s to %s: %v", p, doc, err)
	}
	return out
}

func jsonEqualBytes(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func removable(any bool) func(string) bool {
	if any {
		return patch.AnyRemoval
	}
	return nil
}

// TestProbeRemovals: a rewritten probe may drop its old handler; nothing else may be removed.
func TestProbeRemovals(t *testing.T) {
	before := decode(t, `{"spec":{"containers":[{"name":"app","env":[{"name":"A"}],"readinessProbe":{"tcpSocket":{"port":80},"periodSeconds":5}}]}}`)
	after := decode(t, `{"spec":{"containers":[{"name":"app","env":[{"name":"A"}],"readinessProbe":{"httpGet":{"path":"/app-health/app/readyz","port":15020},"periodSeconds":5}}]}}`)
	if _, err := patch.Create(before, after, nil); !errors.Is(err, patch.ErrRemovesUserData) {
		t.Fatalf("a probe's handler removed without leave: %v", err)
	}
	if _, err := patch.Create(before, after, patch.ProbeRemovals); err != nil {
		t.Fatalf("a rewritten probe refused: %v", err)
	}
	lost := decode(t, `{"spec":{"containers":[{"name":"app","readinessProbe":{"httpGet":{"path":"/app-health/app/readyz","port":15020},"periodSeconds":5}}]}}`)
	if _, err := patch.Create(before, lost, patch.ProbeRemovals); !errors.Is(err, patch.ErrRemovesUserData) {
		t.Fatalf("a container's env removed beside a probe rewrite: %v", err)
	}
}

// TestRewriteRemovals: the annotations a rewrite removes may be removed, no others.
func TestRewriteRemovals(t *testing.T) {
	before := decode(t, `{"metadata":{"annotations":{"prometheus-io/scrape":"true","keep":"x"}}}`)
	after := decode(t, `{"metadata":{"annotations":{"prometheus.io/scrape":"true","keep":"x"}}}`)
	if _, err := patch.Create(before, after, patch.RewriteRemovals([]string{"prometheus-io/scrape"})); err != nil {
		t.Fatalf("a removal the rewrite asked for was refused: %v", err)
	}
	lost := decode(t, `{"metadata":{"annotations":{"prometheus.io/scrape":"true"}}}`)
	if _, err := patch.Create(before, lost, patch.RewriteRemovals([]string{"prometheus-io/scrape"})); !errors.Is(err, patch.ErrRemovesUserData) {
		t.Fatalf("an annotation the rewrite did not remove was removed: %v", err)
	}
}
