package render

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// readBack parses text as a template would use it, under a key with nindent, and returns the
// value as JSON decodes it.
func readBack(t testing.TB, text string) any {
	t.Helper()
	doc := "v:" + strings.ReplaceAll("\n"+text, "\n", "\n    ")
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("%v in\n%s", err, doc)
	}
	j, err := json.Marshal(m["v"])
	if err != nil {
		t.Fatalf("%v: %#v", err, m["v"])
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func asJSON(t testing.TB, v any) any {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestToYAMLReadsBackAsItWasGiven(t *testing.T) {
	cases := []any{
		map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"cpu": "2"}},
		map[string]any{"8080": "port", "true": "bool", "a b": 1, "x:y": []any{}, "#": map[string]any{}, "": "empty", "null": nil, "yes": "no"},
		[]any{map[string]any{"name": "a", "value": "1"}, []any{"b", []any{}}, "", "- not a list", "'quoted'", "multi\nline\ttab \u00e9 \"q\" \\", 1.5, 1e21, json.Number("42"), false},
		"on", "0x10", "1e3", "~", "*alias", "&anchor", "!tag", "%directive", "key: value", " leading",
		map[string]any{}, []any{}, nil, true, 3,
		corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}},
		corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{ContainerPort: 80}}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		cases = append(cases, randomValue(r, 4))
	}
	for _, c := range cases {
		text, err := toYAML(c)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readBack(t, text), asJSON(t, c); !reflect.DeepEqual(got, want) {
			t.Errorf("toYAML(%#v) =\n%s\nreads back as %#v", c, text, got)
		}
	}
}

func randomValue(r *rand.Rand, depth int) any {
	words := []string{"a", "B-c", "1", "true", "x y", "é", "", ":", "- ", "#c", "null", "\n", "1.0", "~", "{}", "[x]", "key.name/path"}
	switch k := r.IntN(8); {
	case depth == 0 || k < 3:
		switch r.IntN(4) {
		case 0:
			return words[r.IntN(len(words))]
		case 1:
			return float64(r.IntN(2000)) / 8
		case 2:
			return r.IntN(2) == 0
		}
		return nil
	case k < 6:
		m := map[string]any{}
		for range r.IntN(4) {
			m[words[r.IntN(len(words))]] = randomValue(r, depth-1)
		}
		return m
	default:
		var l []any
		for range r.IntN(4) {
			l = append(l, randomValue(r, depth-1))
		}
		if l == nil {
			return []any{}
		}
		return l
	}
}

// TestToYAMLBlockStyle: what a template author sees of the shipped resources.
func TestToYAMLBlockStyle(t *testing.T) {
	text, err := toYAML(map[string]any{"requests": map[string]any{"cpu": "100m"}, "limits": map[string]any{"cpu": "2", "memory": "1Gi"}, "list": []any{map[string]any{"a": 1, "b": []any{"x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "limits:\n  cpu: \"2\"\n  memory: \"1Gi\"\nlist:\n  - a: 1\n    b:\n      - \"x\"\nrequests:\n  cpu: \"100m\""
	if text != want {
		t.Errorf("toYAML =\n%s\nwant\n%s", text, want)
	}
}

func FuzzToYAML(f *testing.F) {
	for _, s := range []string{`{"a":{"b":[1,"x",null,{}]}}`, `["- a",{"true":"on"}]`, `"multi\nline"`, `{"":[[],[{}]]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		text, err := toYAML(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readBack(t, text), asJSON(t, v); !reflect.DeepEqual(got, want) {
			t.Errorf("toYAML(%s) =\n%s\nreads back as %#v", s, text, got)
		}
	})
}
