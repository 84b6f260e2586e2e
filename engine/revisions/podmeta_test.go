package revisions

import (
	"maps"
	"testing"
)

func TestPodMeta(t *testing.T) {
	for _, c := range []struct {
		raw    string
		ns     string
		labels map[string]string
	}{
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"shop","labels":{"istio.io/rev":"prod"}},"spec":{"containers":[]}}`, "shop", map[string]string{"istio.io/rev": "prod"}},
		{`{"metadata":{"labels":{"a":"b"}},"spec":`, "", map[string]string{"a": "b"}}, // what follows metadata is never read
		{`{"kind":"Pod","spec":{"x":[1,2,{"y":null}]},"metadata":{"namespace":"n"}}`, "n", nil},
		{`{"metadata":{"labels":{"a":1}}}`, "", nil},
		{`[]`, "", nil},
		{``, "", nil},
		{`{"kind":`, "", nil},
	} {
		ns, labels := podMeta([]byte(c.raw))
		if ns != c.ns || !maps.Equal(labels, c.labels) {
			t.Errorf("%s: %q %v, want %q %v", c.raw, ns, labels, c.ns, c.labels)
		}
	}
}

func FuzzPodMeta(f *testing.F) {
	f.Add([]byte(`{"metadata":{"namespace":"shop","labels":{"istio.io/rev":"prod"}}}`))
	f.Add([]byte(`{"spec":{},"metadata":{"labels":{"a":"b"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		podMeta(raw) // never panics, whatever the network sends
	})
}
