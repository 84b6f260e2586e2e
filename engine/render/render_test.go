package render_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/engine/render"
	"github.com/rego-injector/rego-injector/engine/workload"
)

func data() render.Data {
	return render.Data{
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"a": "1"}, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}},
		Values:   map[string]any{"image": "proxy:1", "empty": "", "nested": map[string]any{"cpu": "100m"}},
		Variant:  "sidecar",
		Revision: "r1",
	}
}

func TestFunctions(t *testing.T) {
	const tmpl = `metadata:
  annotations:
    a: {{ annotation .Pod "a" "none" | quote }}
    b: {{ annotation .Pod.ObjectMeta "b" "none" | quote }}
    c: {{ label .Pod "app" "" | quote }}
    d: {{ isset .Values "image" | quote }}
    e: {{ isset .Values "nope" | quote }}
    f: {{ valueOrDefault .Values.empty "fallback" | quote }}
    g: {{ toJSON .Values.nested | quote }}
    h: {{ include "_x" . | quote }}
    i: {{ if .Owner }}{{ .Owner.Kind }}{{ else }}bare{{ end }}
spec:
  containers:
  - name: proxy
    image: {{ .Values.image }}
    resources:
      requests:
        {{- toYaml .Values.nested | nindent 8 }}
`
	set, err := render.Parse(map[string]string{"sidecar": tmpl, "_x": `{{ define "_x" }}{{ .Revision }}-{{ .Variant }}{{ end }}`})
	if err != nil {
		t.Fatal(err)
	}
	p, err := set.Render("sidecar", data())
	if err != nil {
		t.Fatal(err)
	}
	ann := p["metadata"].(map[string]any)["annotations"].(map[string]any)
	want := map[string]string{"a": "1", "b": "none", "c": "web", "d": "true", "e": "false", "f": "fallback", "g": `{"cpu":"100m"}`, "h": "r1-sidecar", "i": "bare"}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("annotation %s = %v, want %q", k, ann[k], v)
		}
	}
	c := p["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if c["resources"].(map[string]any)["requests"].(map[string]any)["cpu"] != "100m" {
		t.Errorf("toYaml/nindent: %v", c)
	}
	d := data()
	d.Owner = &workload.Owner{Kind: "Job", Name: "x"}
	if p, err = set.Render("sidecar", d); err != nil || p["metadata"].(map[string]any)["annotations"].(map[string]any)["i"] != "Job" {
		t.Errorf("owner: %v %v", p, err)
	}
}

func TestRenderErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		tmpl string
		// atParse says the template is refused by Parse, else by Render with ErrTemplate; want is
		// a part of the error message.
		atParse bool
		want    string
	}{
		"missing key":       {tmpl: "spec:\n  containers:\n  - name: {{ .Values.nope }}\n", want: `map has no entry for key "nope"`},
		"not hermetic":      {tmpl: `{{ env "HOME" }}`, atParse: true, want: `function "env" not defined`},
		"unknown field":     {tmpl: "spec:\n  containers:\n  - name: x\n    imag: y\n", want: "imag"},
		"forbidden section": {tmpl: "status:\n  phase: Running\n", want: "status"},
		"forbidden field":   {tmpl: "spec:\n  serviceAccountName: root\n", want: "serviceAccountName"},
		"duplicate key":     {tmpl: "spec:\n  containers: []\n  containers: []\n", want: "containers"},
		"panic":             {tmpl: "{{ div 1 0 }}", want: "div"},
	} {
		t.Run(name, func(t *testing.T) {
			set, err := render.Parse(map[string]string{"v": tc.tmpl})
			if tc.atParse {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("parse error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused at parse time, not by Render: %v", err)
			}
			if _, err := set.Render("v", data()); !errors.Is(err, render.ErrTemplate) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a template error containing %q", err, tc.want)
			}
		})
	}
	set, _ := render.Parse(map[string]string{"v": "{}"})
	if _, err := set.Render("other", data()); !errors.Is(err, render.ErrUnknownVariant) || !strings.Contains(err.Error(), "other") {
		t.Fatalf("unknown variant: %v", err)
	}
}

// TestParsedPartialsAreNotShared: a partial served from the cache is a copy; changing one (as the
// merge does) leaves the next render as it was, and different output is parsed anew.
func TestParsedPartialsAreNotShared(t *testing.T) {
	set, err := render.Parse(map[string]string{"v": "spec:\n  containers:\n  - name: {{ .Pod.Name }}\n    image: proxy\n"})
	if err != nil {
		t.Fatal(err)
	}
	image := func(p render.Partial) map[string]any {
		return p["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	}
	for i := range 3 { // parsed, then twice from the cache
		p, err := set.Render("v", data())
		if err != nil {
			t.Fatal(err)
		}
		if got := image(p)["image"]; got != "proxy" {
			t.Fatalf("render %d: a change to an earlier rendered partial reached it: image %v", i, got)
		}
		image(p)["image"] = "changed"
	}
	other := data()
	other.Pod = other.Pod.DeepCopy()
	other.Pod.Name = "api"
	third, err := set.Render("v", other)
	if err != nil {
		t.Fatal(err)
	}
	if got := third["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["name"]; got != "api" {
		t.Fatalf("another pod got a cached partial: name %v", got)
	}
}

// TestExcludeInboundPort: the status port joins the excluded inbound ports as Istio's template
// function adds it.
func TestAppendMultusNetwork(t *testing.T) {
	const n = "default/istio-cni"
	for existing, want := range map[string]string{
		"":                               n,
		"  ":                             n,
		"macvlan":                        "macvlan, default/istio-cni",
		"macvlan, default/istio-cni":     "macvlan, default/istio-cni",
		`[{"name":"macvlan"}]`:           `[{"name":"macvlan"}, {"name":"default/istio-cni"}]`,
		`[{"name":"default/istio-cni"}]`: `[{"name":"default/istio-cni"}]`,
		`[]`:                             `[{"name":"default/istio-cni"}]`,
		`[{"name":}]`:                    `[{"name":}]`,
	} {
		if got := render.Funcs()["appendMultusNetwork"].(func(string, string) string)(existing, n); got != want {
			t.Errorf("appendMultusNetwork(%q) = %q, want %q", existing, got, want)
		}
	}
}

func TestExcludeInboundPort(t *testing.T) {
	for _, c := range []struct {
		port any
		list string
		want string
	}{
		{15020, "8080, 9090", "8080,9090,15020"},
		{15020, "15020", "15020"},
		{15020, "", "15020"},
		{"15030", "8080,,9090", "8080,9090,15030"},
		{0, "8080", "8080"},
		{"", " 8080", " 8080"},
	} {
		if got := render.Funcs()["excludeInboundPort"].(func(any, string) string)(c.port, c.list); got != c.want {
			t.Errorf("excludeInboundPort(%v, %q) = %q, want %q", c.port, c.list, got, c.want)
		}
	}
}

// TestMergeLaterWins: templates merged in order, the later winning, as Istio merges the templates
// of inject.istio.io/templates.
func TestMergeLaterWins(t *testing.T) {
	a := render.Partial{
		"metadata": map[string]any{"labels": map[string]any{"a": "1", "b": "1"}},
		"spec": map[string]any{
			"containers": []any{map[string]any{"name": "proxy", "image": "one", "env": []any{map[string]any{"name": "A", "value": "1"}}}},
			"volumes":    []any{map[string]any{"name": "v", "emptyDir": map[string]any{}}},
		},
		"rewrite": map[string]any{"containers": []any{map[string]any{"name": "app", "readinessProbe": map[string]any{"tcpSocket": map[string]any{"port": 1.0}}}}},
	}
	b := render.Partial{
		"metadata": map[string]any{"labels": map[string]any{"b": "2"}, "annotations": map[string]any{"c": "2"}},
		"spec": map[string]any{
			"containers":     []any{map[string]any{"name": "proxy", "args": []any{"router"}, "env": []any{map[string]any{"name": "B", "value": "2"}}}},
			"initContainers": []any{map[string]any{"name": "init"}},
			"volumes":        []any{map[string]any{"name": "v", "configMap": map[string]any{"name": "x"}}},
		},
		"rewrite": map[string]any{"containers": []any{map[string]any{"name": "app", "readinessProbe": map[string]any{"httpGet": map[string]any{"port": 2.0}}}}},
	}
	got := render.Merge(a, b)
	want := render.Partial{
		"metadata": map[string]any{"labels": map[string]any{"a": "1", "b": "2"}, "annotations": map[string]any{"c": "2"}},
		"spec": map[string]any{
			"containers": []any{map[string]any{"name": "proxy", "image": "one", "args": []any{"router"},
				"env": []any{map[string]any{"name": "B", "value": "2"}, map[string]any{"name": "A", "value": "1"}}}},
			"initContainers": []any{map[string]any{"name": "init"}},
			"volumes":        []any{map[string]any{"name": "v", "configMap": map[string]any{"name": "x"}}},
		},
		"rewrite": map[string]any{"containers": []any{map[string]any{"name": "app", "readinessProbe": map[string]any{"httpGet": map[string]any{"port": 2.0}}}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged\n%v\nwant\n%v", got, want)
	}
	if a["metadata"].(map[string]any)["labels"].(map[string]any)["b"] != "1" {
		t.Error("Merge changed its first argument")
	}
	if render.Merge(nil, b)["metadata"] == nil {
		t.Error("Merge(nil, b) is not b")
	}
}
