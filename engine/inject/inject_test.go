package inject_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/render"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const pod = `{"metadata":{"name":"web","labels":{"app":"web","tier":"user"}},
 "spec":{"containers":[{"name":"app","image":"nginx"},{"name":"proxy","image":"mine","env":[{"name":"A","value":"user"}]}],
  "initContainers":[{"name":"setup"}],"volumes":[{"name":"data","emptyDir":{}}]}}`

const partial = `{"metadata":{"labels":{"tier":"template","mesh":"on"},"annotations":{"note":"x"}},
 "spec":{"containers":[{"name":"proxy","image":"template","args":["run"],"env":[{"name":"A","value":"template"},{"name":"B","value":"template"}]}],
  "initContainers":[{"name":"net","image":"net"},{"name":"proxy-native","image":"proxy","restartPolicy":"Always"}],
  "volumes":[{"name":"data","emptyDir":{"medium":"Memory"}},{"name":"token"}],"imagePullSecrets":[{"name":"pull"}]}}`

func TestApplyMergeRules(t *testing.T) {
	p := obj(t, pod)
	if err := inject.Apply(p, render.Partial(obj(t, partial)), inject.Status{Variant: "v", Revision: "r"}); err != nil {
		t.Fatal(err)
	}
	spec := p["spec"].(map[string]any)
	names := func(field string) []string {
		var out []string
		for _, c := range spec[field].([]any) {
			out = append(out, c.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := names("containers"); !reflect.DeepEqual(got, []string{"app", "proxy"}) {
		t.Errorf("containers %v: the existing proxy must stay in place", got)
	}
	if got := names("initContainers"); !reflect.DeepEqual(got, []string{"net", "proxy-native", "setup"}) {
		t.Errorf("init containers %v: with a native sidecar the template's go first, in order", got)
	}
	if got := names("volumes"); !reflect.DeepEqual(got, []string{"data", "token"}) {
		t.Errorf("volumes %v", got)
	}
	proxy := spec["containers"].([]any)[1].(map[string]any)
	if proxy["image"] != "mine" || proxy["args"] == nil {
		t.Errorf("the pod's own proxy fields must win, the template's fill in: %v", proxy)
	}
	env := map[string]any{}
	for _, e := range proxy["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = e.(map[string]any)["value"]
	}
	if env["A"] != "user" || env["B"] != "template" {
		t.Errorf("env merged by name, the pod's winning: %v", env)
	}
	if spec["volumes"].([]any)[0].(map[string]any)["emptyDir"].(map[string]any)["medium"] != nil {
		t.Error("the pod's own volume was overwritten")
	}
	labels := p["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["tier"] != "user" || labels["mesh"] != "on" {
		t.Errorf("labels %v", labels)
	}
	st, ok, err := inject.ReadStatus(p)
	if err != nil || !ok {
		t.Fatalf("status: %v %v", ok, err)
	}
	want := inject.Status{Variant: "v", Revision: "r", Containers: []string{"proxy"}, InitContainers: []string{"net", "proxy-native"},
		Volumes: []string{"token"}, ImagePullSecrets: []string{"pull"}, Labels: []string{"mesh"}, Annotations: []string{"note"},
		Replaced: map[string]map[string]any{"containers": {"proxy": obj(t, `{"name":"proxy","image":"mine","env":[{"name":"A","value":"user"}]}`)}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status\n got %+v\nwant %+v", st, want)
	}
}

// TestPlainInitContainersGoLast: without a native sidecar the template's init containers go after
// the pod's own, which then run before the redirect is installed (Istio's order).
func TestPlainInitContainersGoLast(t *testing.T) {
	p := obj(t, pod)
	if err := inject.Apply(p, render.Partial(obj(t, `{"spec":{"initContainers":[{"name":"net","image":"net"}],"containers":[{"name":"sidecar","image":"proxy"}]}}`)), inject.Status{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range p["spec"].(map[string]any)["initContainers"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{"setup", "net"}) {
		t.Errorf("init containers %v, want the pod's, then the template's", names)
	}
}

// TestPlacesMoveThePodsInitContainers: an item with only a name places the pod's own init
// container of that name among the template's, when they go first (Istio's
// init-containers-before-proxy); a name the pod lacks adds nothing.
func TestPlacesMoveThePodsInitContainers(t *testing.T) {
	p := obj(t, `{"spec":{"containers":[{"name":"app","image":"app"}],
	  "initContainers":[{"name":"a","image":"a"},{"name":"b","image":"b"},{"name":"c","image":"c"}]}}`)
	partial := `{"spec":{"initContainers":[{"name":"net","image":"net"},{"name":"c"},{"name":"missing"},{"name":"a"},
	  {"name":"proxy","image":"proxy","restartPolicy":"Always"}]}}`
	st := inject.Status{Revision: "r"}
	if err := inject.Apply(p, render.Partial(obj(t, partial)), st); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range p["spec"].(map[string]any)["initContainers"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string))
		if len(c.(map[string]any)) == 1 {
			t.Errorf("init container %v has no image", c)
		}
	}
	if !reflect.DeepEqual(names, []string{"net", "c", "a", "proxy", "b"}) {
		t.Errorf("init containers %v, want net, then c and a where the template places them, proxy, then the rest", names)
	}
	got, _, err := inject.ReadStatus(p)
	if err != nil || !reflect.DeepEqual(got.InitContainers, []string{"net", "proxy"}) || got.Replaced != nil {
		t.Errorf("status %+v (%v): only the template's own init containers are injected", got, err)
	}
}

// TestHoldingContainerGoesFirst: a container with a postStart hook goes before the pod's own, so
// that the hook holds them back (Istio's holdApplicationUntilProxyStarts).
func TestHoldingContainerGoesFirst(t *testing.T) {
	p := obj(t, pod)
	partial := `{"spec":{"containers":[{"name":"sidecar","lifecycle":{"postStart":{"exec":{"command":["wait"]}}}},{"name":"other","image":"other"}]}}`
	if err := inject.Apply(p, render.Partial(obj(t, partial)), inject.Status{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range p["spec"].(map[string]any)["containers"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{"sidecar", "app", "proxy", "other"}) {
		t.Errorf("containers %v, want the holding one first, the others after the pod's", names)
	}
}

func TestStripUndoesApply(t *testing.T) {
	const plain = `{"metadata":{"name":"web"},"spec":{"containers":[{"name":"app"}]}}`
	p := obj(t, plain)
	if err := inject.Apply(p, render.Partial(obj(t, partial)), inject.Status{Variant: "v", Revision: "r"}); err != nil {
		t.Fatal(err)
	}
	injected := runtime.DeepCopyJSON(p)
	stripped, err := inject.Strip(p)
	if err != nil || !stripped {
		t.Fatalf("strip: %v %v", stripped, err)
	}
	if !reflect.DeepEqual(p, obj(t, plain)) {
		t.Errorf("strip(apply(pod)) != pod:\n%v\nfrom %v", p, injected)
	}
	if again, err := inject.Strip(p); again || err != nil {
		t.Errorf("stripping a pod without status: %v %v", again, err)
	}
	bad := obj(t, `{"metadata":{"annotations":{"rego-injector.io/status":"{"}}}`)
	if _, err := inject.Strip(bad); err == nil {
		t.Error("an unreadable status must be an error, not a guess")
	}
}

// TestStripRestoresTheUsersOwnSidecar: a container the pod had under the sidecar's name comes back
// as it was, not deleted.
func TestStripRestoresTheUsersOwnSidecar(t *testing.T) {
	p := obj(t, pod)
	if err := inject.Apply(p, render.Partial(obj(t, partial)), inject.Status{Variant: "v", Revision: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inject.Strip(p); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, obj(t, pod)) {
		t.Errorf("strip(apply(pod)) != pod:\n got %v\nwant %v", p, obj(t, pod))
	}
}
