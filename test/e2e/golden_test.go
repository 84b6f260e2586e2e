package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestGoldenPodsAreValid: every pod the default bundle makes in the engine's golden cases
// (engine/webhook/testdata/golden/*/patched.yaml, each the patch applied to the pod as sent) is
// one the kube-apiserver accepts. Each goes as JSON, as the patch left it, in a server-side dry
// run: the apiserver's own validation judges it, and the validating webhook too, in a namespace
// switched off for injection so that the mutating webhook leaves it as it is. A case that sets
// its own bundle data (istio-cni mode, say) is judged by its own bundle in the engine's test, so
// here it goes to kube-system, which the webhooks do not see. A case whose pod as sent is itself
// one the apiserver refuses (it tests bad input) is skipped.
func TestGoldenPodsAreValid(t *testing.T) {
	need(t)
	namespace(t, "golden", map[string]string{"istio-injection": "disabled"})
	dirs, err := filepath.Glob("../../engine/webhook/testdata/golden/*")
	if err != nil || len(dirs) < 50 {
		t.Fatalf("golden cases: %d found (%v)", len(dirs), err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c struct {
				Data map[string]any `json:"data"`
			}
			readYAML(t, filepath.Join(dir, "case.yaml"), &c)
			ns := "golden"
			if c.Data != nil {
				ns = "kube-system"
			}
			if err := dryRunCreate(t, ns, filepath.Join(dir, "pod.yaml")); err != nil {
				t.Skipf("the pod as sent is refused already (a case of bad input): %v", err)
			}
			patched := filepath.Join(dir, "patched.yaml")
			if _, err := os.Stat(patched); err != nil {
				t.Skip("the case injects nothing")
			}
			if err := dryRunCreate(t, ns, patched); err != nil {
				t.Errorf("the apiserver refuses the injected pod: %v", err)
			}
		})
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// dryRunCreate sends the pod in file to the apiserver as JSON, in namespace ns, without its owner
// references (the owners do not exist here), and checks that it comes back with every container.
func dryRunCreate(t *testing.T, ns, file string) error {
	t.Helper()
	var pod map[string]any
	readYAML(t, file, &pod)
	meta, _ := pod["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		pod["metadata"] = meta
	}
	meta["namespace"] = ns
	delete(meta, "ownerReferences")
	body, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var created corev1.Pod
	err = need(t).cluster.Client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").
		Param("dryRun", metav1.DryRunAll).Body(body).Do(t.Context()).Into(&created)
	if err != nil {
		return err
	}
	spec, _ := pod["spec"].(map[string]any)
	sent := len(asList(spec["containers"])) + len(asList(spec["initContainers"]))
	if got := len(created.Spec.Containers) + len(created.Spec.InitContainers); got != sent {
		t.Errorf("the pod was changed on the way: %d containers, sent %d", got, sent)
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }
