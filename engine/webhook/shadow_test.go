package webhook

import (
	"encoding/json"
	"testing"

	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// injected is the result of injecting a pod at revision, its sidecar image and app port given:
// the revision appears in the status annotation and in the sidecar's environment, as the default
// templates render it.
func injected(t *testing.T, revision, appImage string, port int) injector.Result {
	t.Helper()
	status, _ := json.Marshal(map[string]any{"revision": revision, "variant": "sidecar", "containers": []string{"istio-proxy"}})
	raw, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"name": "web-2", "annotations": map[string]any{"rego-injector.io/status": string(status)}},
		"spec": map[string]any{"containers": []any{
			map[string]any{"name": "app", "image": appImage, "ports": []any{map[string]any{"containerPort": port}}},
			map[string]any{"name": "istio-proxy", "image": "proxyv2:1.2", "env": []any{map[string]any{"name": "REVISION", "value": revision}}},
		}},
	})
	var pod map[string]any
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	return injector.Result{Revision: revision, Pod: pod, Decision: policy.Decision{Inject: true, Variant: "sidecar"}}
}

// TestShadowDifferenceIsStructural: the shadow's revision name stands for the live one only where
// a value is exactly the revision; a revision named "2" or "v2" neither hides a changed image tag
// nor invents a changed port.
func TestShadowDifferenceIsStructural(t *testing.T) {
	for _, c := range []struct {
		name       string
		live, sh   injector.Result
		difference string
	}{
		{"only the revision differs", injected(t, "1", "app:1.0", 8080), injected(t, "2", "app:1.0", 8080), ""},
		{"a revision named v2 does not hide a tag", injected(t, "v1", "app:v1", 8080), injected(t, "v2", "app:v2", 8080), "patch"},
		{"a revision named 2 does not invent a port", injected(t, "1", "app:1.0", 8082), injected(t, "2", "app:1.0", 8082), ""},
		{"a revision named 2 does not hide a port", injected(t, "1", "app:1.0", 8081), injected(t, "2", "app:1.0", 8082), "patch"},
		{"same revision, other image", injected(t, "1", "app:1.0", 8080), injected(t, "1", "app:1.1", 8080), "patch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := shadowDifference(c.live, nil, c.sh, nil); got != c.difference {
				t.Errorf("difference %q, want %q", got, c.difference)
			}
		})
	}
	live, sh := injected(t, "1", "app:1.0", 8080), injected(t, "2", "app:1.0", 8080)
	st := `{"revision":"2","variant":"sidecar","containers":["istio-proxy","extra"]}`
	sh.Pod["metadata"].(map[string]any)["annotations"].(map[string]any)["rego-injector.io/status"] = st
	if got := shadowDifference(live, nil, sh, nil); got != "patch" {
		t.Errorf("a status annotation that records another container: difference %q, want patch", got)
	}
}
