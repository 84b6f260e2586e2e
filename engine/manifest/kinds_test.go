package manifest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/manifest"
)

// kinds has a workload of each kind the offline commands learnt beside the built-in ones: an
// OpenShift DeploymentConfig, an Argo Rollout, a Rollout that takes its pods from a Deployment, a
// custom resource with a pod template, and one in a List.
const kinds = `apiVersion: apps.openshift.io/v1
kind: DeploymentConfig
metadata: {name: legacy, namespace: shop}
spec:
  replicas: 1
  selector: {app: legacy, deploymentconfig: legacy}
  triggers: [{type: ConfigChange}]
  template:
    metadata: {labels: {app: legacy, deploymentconfig: legacy}}
    spec:
      containers: [{name: app, image: legacy:1}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: canary, namespace: shop}
spec:
  selector: {matchLabels: {app: canary}}
  strategy: {canary: {steps: [{setWeight: 20}, {pause: {}}]}}
  template:
    metadata: {labels: {app: canary}}
    spec:
      containers: [{name: app, image: canary:1}]
---
# its pods come from Deployment/base
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: referring, namespace: shop}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: base}
  strategy: {canary: {}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: shop}
spec:
  template:
    spec:
      containers: [{image: hello:1}]
---
apiVersion: v1
kind: List
items:
- apiVersion: example.com/v1
  kind: Worker
  metadata: {name: queue, namespace: shop}
  spec:
    template:
      spec:
        containers: [{name: worker, image: worker:1}]
`

func processor(t *testing.T) *manifest.Processor {
	t.Helper()
	inj := fixture.Injector(t, fixture.Policy(t, ""), map[string]string{"istio-injection": "enabled"})
	return &manifest.Processor{Injector: inj, Namespace: "default"}
}

// TestKindsExplain: every kind is decided and injected; the kinds not known carry a note saying
// their spec.template was taken as the pod template; the Rollout with a workloadRef is skipped, with
// a note saying where its pods come from, and reported in text, JSON and JUnit.
func TestKindsExplain(t *testing.T) {
	got, err := processor(t).Check(t.Context(), strings.NewReader(kinds))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind, name, note string
		skipped          bool
	}{
		{"DeploymentConfig", "legacy", "", false},
		{"Rollout", "canary", "", false},
		{"Rollout", "referring", "spec.workloadRef: the Rollout's pods take their template from Deployment/base", true},
		{"Service", "hello", "kind Service (apiVersion serving.knative.dev/v1) is not a known workload kind: its spec.template is taken as a pod template", false},
		{"Worker", "queue", "kind Worker (apiVersion example.com/v1) is not a known workload kind", false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d workloads, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		wl := got[i]
		if wl.Kind != w.kind || wl.Name != w.name || wl.Namespace != "shop" {
			t.Errorf("workload %d is %s/%s in %s, want %s/%s in shop", i, wl.Kind, wl.Name, wl.Namespace, w.kind, w.name)
		}
		if !strings.Contains(wl.Note, w.note) || (w.note == "") != (wl.Note == "") {
			t.Errorf("%s/%s: note %q, want %q", wl.Kind, wl.Name, wl.Note, w.note)
		}
		if wl.Skipped != w.skipped {
			t.Errorf("%s/%s: skipped %v", wl.Kind, wl.Name, wl.Skipped)
		}
		switch {
		case w.skipped && (wl.Decision.Inject || wl.Changed || wl.Validation != nil || wl.Revision != ""):
			t.Errorf("%s/%s: skipped, yet decided: %+v", wl.Kind, wl.Name, wl)
		case !w.skipped && (!wl.Decision.Inject || !wl.Changed || wl.Decision.Variant != "sidecar"):
			t.Errorf("%s/%s: not injected with the sidecar variant: %+v", wl.Kind, wl.Name, wl.Decision)
		case !w.skipped && (wl.Validation == nil || len(wl.Validation.Deny) > 0):
			t.Errorf("%s/%s: validation %+v", wl.Kind, wl.Name, wl.Validation)
		}
	}
	if refused, failed := manifest.Tally(got); refused != 0 || failed != 0 {
		t.Errorf("tally: %d refused, %d failed", refused, failed)
	}

	var text bytes.Buffer
	if err := manifest.WriteText(&text, got); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"DeploymentConfig/legacy in namespace shop (document 1): inject, variant sidecar [revision ",
		"Rollout/canary in namespace shop (document 2): inject, variant sidecar [revision ",
		"Rollout/referring in namespace shop (document 3): skipped, no pod template\n  note: spec.workloadRef: the Rollout's pods take their template from Deployment/base, so the Rollout holds no pod template to inject; inject Deployment/base instead\n\n",
		"\n  note: kind Service (apiVersion serving.knative.dev/v1) is not a known workload kind: its spec.template is taken as a pod template\n  because ",
		"Worker/queue in namespace shop (document 5): inject, variant sidecar",
	} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("text report lacks %q:\n%s", line, text.String())
		}
	}

	var js bytes.Buffer
	if err := manifest.WriteJSON(&js, got); err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded[2]["skipped"] != true || decoded[2]["note"] != got[2].Note || decoded[3]["note"] != got[3].Note {
		t.Errorf("JSON report: %s", js.String())
	}
	if _, ok := decoded[0]["note"]; ok {
		t.Errorf("a note for a known kind: %v", decoded[0])
	}
	if _, ok := decoded[0]["skipped"]; ok {
		t.Errorf("skipped written for a workload that was not: %v", decoded[0])
	}

	var junit bytes.Buffer
	if err := manifest.WriteJUnit(&junit, got); err != nil {
		t.Fatal(err)
	}
	var report struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	suite := report.Suites[0]
	if suite.Tests != 5 || suite.Failures != 0 || suite.Skipped != 1 {
		t.Errorf("suite: %d tests, %d failures, %d skipped:\n%s", suite.Tests, suite.Failures, suite.Skipped, junit.String())
	}
	for i, c := range suite.Cases {
		if (c.Skipped != nil) != (i == 2) || (c.Skipped != nil && c.Skipped.Message != got[2].Note) {
			t.Errorf("case %s: skipped %+v", c.Name, c.Skipped)
		}
	}
	if !strings.Contains(suite.Cases[3].SystemOut, "note: kind Service") {
		t.Errorf("the note is not in the case's output: %s", suite.Cases[3].SystemOut)
	}

	// Without a skipped workload the JUnit report is as it always was.
	junit.Reset()
	if err := manifest.WriteJUnit(&junit, got[:2]); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(junit.String(), "skipped") {
		t.Errorf("skipped written with none skipped:\n%s", junit.String())
	}
}

// TestKindsInject: inject writes every kind injected in place, heads the document of a kind it did
// not know with a comment saying so, leaves the Rollout with a workloadRef as written, and changes
// nothing when run on its own output.
func TestKindsInject(t *testing.T) {
	p := processor(t)
	var out bytes.Buffer
	if _, err := p.Inject(t.Context(), strings.NewReader(kinds), &out); err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Split(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 5 {
		t.Fatalf("%d documents out, want 5:\n%s", len(docs), out.String())
	}
	for _, i := range []int{0, 1, 3} {
		if !strings.Contains(string(docs[i].Raw), "name: istio-proxy") {
			t.Errorf("document %d not injected:\n%s", i+1, docs[i].Raw)
		}
	}
	if !strings.Contains(string(docs[4].Raw), "name: istio-proxy") {
		t.Errorf("the List's item not injected:\n%s", docs[4].Raw)
	}
	const referring = "# its pods come from Deployment/base\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: referring, namespace: shop}\nspec:\n  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: base}\n  strategy: {canary: {}}\n"
	if string(docs[2].Raw) != referring {
		t.Errorf("the Rollout with a workloadRef was rewritten:\n%s", docs[2].Raw)
	}
	for i, comment := range map[int]string{
		3: "# rego-injector: Service/hello: kind Service (apiVersion serving.knative.dev/v1) is not a known workload kind: its spec.template is taken as a pod template\n",
		4: "# rego-injector: Worker/queue: kind Worker (apiVersion example.com/v1) is not a known workload kind: its spec.template is taken as a pod template\n",
	} {
		if !strings.HasPrefix(string(docs[i].Raw), comment) {
			t.Errorf("document %d does not start with %q:\n%s", i+1, comment, docs[i].Raw)
		}
	}
	for _, i := range []int{0, 1} {
		if strings.Contains(string(docs[i].Raw), "# rego-injector") {
			t.Errorf("a note on a known kind:\n%s", docs[i].Raw)
		}
	}
	var again bytes.Buffer
	if _, err := p.Inject(t.Context(), bytes.NewReader(out.Bytes()), &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("injecting the output again changed it:\n%s", again.String())
	}
}

// TestNoteStaysAComment: the comment quotes the object's kind and name; a line break in them must
// not end the comment and add YAML to the document.
func TestNoteStaysAComment(t *testing.T) {
	in := `apiVersion: example.com/v1
kind: "Worker\nextra: injected\u2028more: x"
metadata: {name: "q\r\nevil: 1", namespace: shop}
spec:
  template:
    spec:
      containers: [{name: worker, image: worker:1}]
`
	var out bytes.Buffer
	if _, err := processor(t).Inject(t.Context(), strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Split(bytes.NewReader(out.Bytes()))
	if err != nil || len(docs) != 1 {
		t.Fatalf("%v, %d documents:\n%s", err, len(docs), out.String())
	}
	if !strings.HasPrefix(out.String(), "# rego-injector: Worker extra: injected more: x/q  evil: 1: ") {
		t.Errorf("comment:\n%s", out.String())
	}
	for _, key := range []string{"extra", "evil", "more"} {
		if _, ok := docs[0].Object[key]; ok {
			t.Errorf("the comment added %q to the document:\n%s", key, out.String())
		}
	}
}
