package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/manifest"
)

// TestInjectDeploymentConfigAndRollout: inject writes an OpenShift DeploymentConfig and an Argo
// Rollout out injected, their pod templates in place; explain names a Rollout with a workloadRef as
// skipped and says why; check passes over the examples of both kinds.
func TestInjectDeploymentConfigAndRollout(t *testing.T) {
	const in = `apiVersion: apps.openshift.io/v1
kind: DeploymentConfig
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  template:
    metadata: {labels: {app: ratings}}
    spec:
      containers: [{name: ratings, image: ratings:1}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  strategy: {canary: {steps: [{setWeight: 50}]}}
  template:
    metadata: {labels: {app: reviews}}
    spec:
      containers: [{name: reviews, image: reviews:1}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: details, namespace: shop}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: details}
`
	code, out, stderr := runCmd(t, in, "inject", "-f", "-", "--namespace-labels", "istio-injection=enabled")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	docs, err := manifest.Split(strings.NewReader(out))
	if err != nil || len(docs) != 3 {
		t.Fatalf("%v, %d documents:\n%s", err, len(docs), out)
	}
	for _, d := range docs[:2] {
		spec := d.Object["spec"].(map[string]any)
		tmpl := spec["template"].(map[string]any)
		inits, _ := tmpl["spec"].(map[string]any)["initContainers"].([]any)
		names := []string{}
		for _, c := range inits {
			names = append(names, c.(map[string]any)["name"].(string))
		}
		annotations, _ := tmpl["metadata"].(map[string]any)["annotations"].(map[string]any)
		if len(names) != 2 || names[1] != "istio-proxy" || annotations["rego-injector.io/status"] == nil {
			t.Errorf("%s not injected in spec.template: init containers %v, annotations %v", d.Object["kind"], names, annotations)
		}
		if _, ok := tmpl["metadata"].(map[string]any)["namespace"]; ok {
			t.Errorf("%s: the namespace was written into the template", d.Object["kind"])
		}
		if d.Object["apiVersion"] == "apps.openshift.io/v1" && spec["selector"].(map[string]any)["app"] != "ratings" {
			t.Errorf("the DeploymentConfig's selector changed: %v", spec["selector"])
		}
	}
	if !strings.HasSuffix(out, "---\n"+in[strings.LastIndex(in, "apiVersion: argoproj.io"):]) {
		t.Errorf("the Rollout with a workloadRef was not written as read:\n%s", out)
	}
	if code, again, _ := runCmd(t, out, "inject", "-f", "-", "--namespace-labels", "istio-injection=enabled"); code != 0 || again != out {
		t.Errorf("second injection changed the output (exit %d)", code)
	}

	code, out, stderr = runCmd(t, in, "explain", "-f", "-", "--namespace-labels", "istio-injection=enabled", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []manifest.Workload
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != 3 || !got[0].Decision.Inject || !got[1].Decision.Inject || !got[2].Skipped ||
		!strings.Contains(got[2].Note, "take their template from Deployment/details") {
		t.Errorf("explain: %s", out)
	}

	for _, file := range []string{"../../examples/deploymentconfig.yaml", "../../examples/rollout.yaml"} {
		code, out, stderr := runCmd(t, "", "check", "-f", file, "--namespace-labels", "istio-injection=enabled")
		if code != 0 || strings.Contains(out, "not injected") || !strings.Contains(out, "inject, variant") {
			t.Errorf("check %s: exit %d, %s\n%s", file, code, stderr, out)
		}
	}
}
