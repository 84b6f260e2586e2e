package injector_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/inject"
)

// FuzzInject: whatever pod arrives, Inject does not panic, and a patch it returns applies to the pod
// as sent and gives a pod that carries the status annotation.
func FuzzInject(f *testing.F) {
	pods, _ := filepath.Glob("testdata/golden/*/pod.yaml")
	for _, p := range pods {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Add([]byte(`{"metadata":{"annotations":{"rego-injector.io/status":"{\"revision\":\"x\",\"containers\":[\"app\"]}"}},"spec":{"containers":[{"name":"app"}]}}`))
	f.Add([]byte(`{"spec":{"containers":"nope"}}`))
	f.Add([]byte(`null`))
	inj := newInjector(f, compileDefault(f, ""), map[string]string{"istio-injection": "enabled"})
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := inj.Inject(t.Context(), request(raw, "default", ""))
		if err != nil || res.Patch == nil {
			return
		}
		var pod map[string]any
		if err := json.Unmarshal(applyPatch(t, raw, res.Patch), &pod); err != nil {
			t.Fatalf("patched pod is not JSON: %v", err)
		}
		if _, ok, err := inject.ReadStatus(pod); !ok || err != nil {
			t.Fatalf("patched pod has no readable status: %v", err)
		}
	})
}
