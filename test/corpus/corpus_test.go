// Package corpus runs the offline injector over real manifests nobody on this project wrote: the
// kubernetes/examples corpus in ../shared/corpus.
package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/manifest"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// corpusDir is where the corpus sits beside a checkout; REGO_INJECTOR_CORPUS overrides it.
func corpusDir(t *testing.T) string {
	dir := os.Getenv("REGO_INJECTOR_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "kubernetes-examples")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("corpus not found at %s (it sits beside the checkout in CI; set REGO_INJECTOR_CORPUS to run this elsewhere): %v", dir, err)
	}
	return dir
}

func processor(t *testing.T) *manifest.Processor {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	inj := injector.New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}})
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	return &manifest.Processor{Injector: inj, Namespace: "corpus"}
}

func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found %d manifests under %s; the corpus has 248", len(files), dir)
	}
	p := processor(t)
	var workloads, injected, passedThrough, skipped, unknownKinds int
	kinds := map[string]int{}
	for _, file := range files {
		rel, _ := filepath.Rel(dir, file)
		t.Run(rel, func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := manifest.Split(bytes.NewReader(in))
			if err != nil {
				t.Skipf("not valid YAML, nothing to inject: %v", err)
			}
			var out bytes.Buffer
			found, err := p.Inject(t.Context(), bytes.NewReader(in), &out)
			if err != nil {
				t.Fatalf("inject: %v", err)
			}
			outDocs, err := manifest.Split(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			if len(outDocs) != len(docs) {
				t.Fatalf("%d documents in, %d out", len(docs), len(outDocs))
			}
			for i, d := range docs {
				o := outDocs[i]
				kind, _ := d.Object["kind"].(string)
				if _, ok := workload.PodTemplate(d.Object); !ok && !isListOfWorkloads(d.Object) {
					passedThrough++
					if !bytes.Equal(bytes.TrimSpace(d.Raw), bytes.TrimSpace(o.Raw)) {
						t.Errorf("document %d (%s) changed but is not a workload", d.Index, kind)
					}
					continue
				}
				checkWorkload(t, d, o)
			}
			for _, w := range found {
				kinds[w.Kind]++
				if w.Skipped {
					skipped++
					continue
				}
				if w.Note != "" {
					unknownKinds++
				}
				workloads++
				if w.Changed {
					injected++
				}
				if w.Decision.Inject && !w.Changed {
					t.Errorf("%s %s: decided to inject but nothing changed", w.Kind, w.Name)
				}
			}
			// What the webhook injects, the validating webhook admits.
			checked, err := p.Check(t.Context(), bytes.NewReader(in))
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			for _, w := range checked {
				switch {
				case w.Skipped:
					if w.Validation != nil || w.Decision.Inject {
						t.Errorf("%s %s: skipped (%s), yet decided or validated", w.Kind, w.Name, w.Note)
					}
				case len(w.Decision.Deny) > 0:
					t.Errorf("%s %s: the injection policy denied it: %v", w.Kind, w.Name, w.Decision.Deny)
				case w.Validation == nil:
					t.Errorf("%s %s: not validated", w.Kind, w.Name)
				case w.Decision.Inject && len(w.Validation.Deny) > 0:
					t.Errorf("%s %s: injected, then refused by validation: %v", w.Kind, w.Name, w.Validation.Deny)
				}
			}
			// Injecting the output again changes nothing, byte for byte.
			var again bytes.Buffer
			if _, err := p.Inject(t.Context(), bytes.NewReader(out.Bytes()), &again); err != nil {
				t.Fatalf("inject the output again: %v", err)
			}
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Errorf("injecting the output again changed it")
			}
		})
	}
	t.Logf("%d files, %d workloads (%d of kinds not known, through their spec.template), %d injected, %d without a pod template, %d other documents passed through",
		len(files), workloads, unknownKinds, injected, skipped, passedThrough)
	t.Logf("workloads by kind: %v; DeploymentConfig: %d, Rollout: %d", kinds, kinds["DeploymentConfig"], kinds["Rollout"])
	if injected == 0 {
		t.Error("nothing in the corpus was injected")
	}
}

// inputDecodeError is the error decoding the input's pod template gives: a manifest that was wrong
// before injection (a string where Kubernetes wants a number) stays wrong in the same way after it.
func inputDecodeError(in manifest.Document) string {
	tmpl, ok := workload.PodTemplate(in.Object)
	if !ok {
		return ""
	}
	raw, _ := json.Marshal(tmpl.Pod)
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return err.Error()
	}
	return ""
}

func isListOfWorkloads(obj map[string]any) bool {
	kind, _ := obj["kind"].(string)
	return strings.HasSuffix(kind, "List")
}

// checkWorkload: the output is the same kind of object, its pod template decodes strictly as a
// Kubernetes pod, and an injected one carries the proxy and the status annotation.
func checkWorkload(t *testing.T, in, out manifest.Document) {
	t.Helper()
	if out.Object == nil {
		t.Fatalf("document %d: output is not an object", in.Index)
	}
	for _, key := range []string{"apiVersion", "kind"} {
		if in.Object[key] != out.Object[key] {
			t.Errorf("document %d: %s changed from %v to %v", in.Index, key, in.Object[key], out.Object[key])
		}
	}
	objs := []map[string]any{out.Object}
	if items, ok := out.Object["items"].([]any); ok {
		objs = nil
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				objs = append(objs, m)
			}
		}
	}
	for _, obj := range objs {
		tmpl, ok := workload.PodTemplate(obj)
		if !ok {
			continue
		}
		raw, err := json.Marshal(tmpl.Pod)
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
			// Old manifests may carry fields today's types lack; they must decode at least leniently.
			if err := json.Unmarshal(raw, &pod); err != nil && err.Error() != inputDecodeError(in) {
				t.Errorf("document %d: pod template does not decode as a Pod: %v", in.Index, err)
				continue
			}
		}
		if _, injected := pod.Annotations["rego-injector.io/status"]; !injected {
			continue
		}
		hasProxy := false
		for _, c := range append(pod.Spec.Containers, pod.Spec.InitContainers...) {
			hasProxy = hasProxy || c.Name == "istio-proxy"
		}
		if !hasProxy {
			t.Errorf("document %d: status annotation but no proxy container", in.Index)
		}
	}
}
