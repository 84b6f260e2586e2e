package injector_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/manifest"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// FuzzInject: whatever pod arrives, Inject does not panic, and a patch it returns applies to the pod
// as sent and gives a pod that carries the status annotation. An injector with a memo answers the
// pod twice, the second time from the memo, as one without does.
func FuzzInject(f *testing.F) {
	pods, _ := filepath.Glob("../webhook/testdata/golden/*/pod.yaml")
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
	for _, pod := range corpusPods(f) {
		f.Add(pod)
	}
	f.Add([]byte(`{"metadata":{"annotations":{"rego-injector.io/status":"{\"revision\":\"x\",\"containers\":[\"app\"]}"}},"spec":{"containers":[{"name":"app"}]}}`))
	f.Add([]byte(`{"spec":{"containers":"nope"}}`))
	f.Add([]byte(`null`))
	labels := map[string]string{"istio-injection": "enabled"}
	inj := fixture.Injector(f, fixture.Policy(f, ""), labels)
	memoised := fixture.Injector(f, fixture.Policy(f, ""), labels, injector.WithMemo(64))
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := inj.Inject(t.Context(), fixture.Admission(raw, "default", ""))
		for range 2 {
			again, errAgain := memoised.Inject(t.Context(), fixture.Admission(raw, "default", ""))
			if (err == nil) != (errAgain == nil) || !bytes.Equal(again.Patch, res.Patch) {
				t.Fatalf("with a memo: %v (patch %s), without: %v (patch %s)", errAgain, again.Patch, err, res.Patch)
			}
		}
		if err != nil || res.Patch == nil {
			return
		}
		var pod map[string]any
		if err := json.Unmarshal(fixture.ApplyPatch(t, raw, res.Patch), &pod); err != nil {
			t.Fatalf("patched pod is not JSON: %v", err)
		}
		if _, ok, err := inject.ReadStatus(pod); !ok || err != nil {
			t.Fatalf("patched pod has no readable status: %v", err)
		}
	})
}

// corpusPods are the pods of the workloads in the manifest corpus that sits beside the checkout in
// CI (none when it is absent), as JSON: real pods nobody here wrote, to seed the fuzzer.
func corpusPods(f *testing.F) [][]byte {
	var pods [][]byte
	for _, raw := range injector.CorpusFiles() {
		docs, err := manifest.Split(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		for _, doc := range docs {
			if t, ok := workload.PodTemplate(doc.Object); ok {
				if js, err := json.Marshal(t.Pod); err == nil {
					pods = append(pods, js)
				}
			}
		}
	}
	f.Logf("%d corpus pods seed the fuzzer", len(pods))
	return pods
}
