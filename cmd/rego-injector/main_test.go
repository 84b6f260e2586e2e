package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const workloads = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: nginx}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: migrate}]
---
# a Service is passed through as written
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
`

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestInjectAndExplain(t *testing.T) {
	code, out, stderr := runCmd(t, workloads, "inject", "-f", "-", "--namespace-labels", "istio-injection=enabled")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Count(out, "name: istio-proxy") != 2 || !strings.Contains(out, "restartPolicy: Always") {
		t.Errorf("want both workloads injected, the Job natively:\n%s", out)
	}
	if !strings.Contains(out, "# a Service is passed through as written\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n") {
		t.Errorf("the Service was rewritten:\n%s", out)
	}
	// The output injected again is the output.
	code, again, _ := runCmd(t, out, "inject", "-f", "-", "--namespace-labels", "istio-injection=enabled")
	if code != 0 || again != out {
		t.Errorf("second injection changed the output (exit %d)", code)
	}

	// Namespace labels from the environment, JSON explanation.
	t.Setenv("REGO_INJECTOR_NAMESPACE_LABELS", "istio-injection=disabled")
	dir := t.TempDir()
	file := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(file, []byte(workloads), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, "", "explain", "-f", file, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []struct {
		Kind     string
		Decision struct {
			Inject  bool
			Reasons []string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != 2 || got[0].Decision.Inject || !strings.Contains(strings.Join(got[0].Decision.Reasons, " "), "disabled") {
		t.Errorf("want two workloads skipped because the namespace is disabled: %s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"inject"},
		{"explain", "-f", "-", "-o", "xml"},
		{"inject", "-f", "-", "--namespace-labels", "novalue"},
		{"serve", "--tls-cert-file", "x"},
		{"inject", "-f", "-", "--bundle", "oci://127.0.0.1:5000/injector:v1"}, // offline: local bundles only
	} {
		if code, _, _ := runCmd(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runCmd(t, "kind: [", "inject", "-f", "-"); code != 1 || !strings.Contains(stderr, "document 1") {
		t.Errorf("bad YAML: exit %d, %s", code, stderr)
	}
}

func TestExplainTrace(t *testing.T) {
	code, out, stderr := runCmd(t, workloads, "explain", "-f", "-", "--trace", "--namespace-labels", "istio-injection=enabled")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "evaluation trace:") || !strings.Contains(out, "policies/injector/mutate.rego:") || !strings.Contains(out, "Exit data.injector.mutate.decision") {
		t.Errorf("no trace with policy locations:\n%.2000s", out)
	}
}

// TestCheck: check injects and validates every workload of files and directories, reports them as
// text, JSON or JUnit XML, goes on past a file it cannot read, and exits 1 when policy refuses one.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	optOut := `apiVersion: v1
kind: Pod
metadata: {name: shell, labels: {sidecar.istio.io/inject: "false"}}
spec: {containers: [{name: sh, image: busybox}]}
`
	if err := os.MkdirAll(filepath.Join(dir, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"apps/workloads.yaml": workloads, "apps/notes.txt": "not a manifest", "shell.yml": optOut} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	enabled := "istio-injection=enabled"
	required := enabled + ",rego-injector.io/require-sidecar=true"

	code, out, stderr := runCmd(t, "", "check", "-f", dir, "--namespace-labels", enabled)
	if code != 0 || strings.Count(out, "validation: allowed") != 3 || strings.Contains(out, "notes.txt") {
		t.Fatalf("exit %d, want 0 with three workloads allowed and the .txt file ignored:\n%s%s", code, out, stderr)
	}

	code, out, stderr = runCmd(t, "", "check", "-f", dir, "--namespace-labels", required, "-o", "junit")
	if code != 1 || !strings.Contains(stderr, "1 of 3 workloads refused") {
		t.Fatalf("exit %d, want 1 naming one refusal: %s", code, stderr)
	}
	var report struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suite    struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("junit output does not parse: %v\n%s", err, out)
	}
	if report.Tests != 3 || report.Failures != 1 || len(report.Suite.Cases) != 3 {
		t.Fatalf("junit report %+v", report)
	}
	for _, c := range report.Suite.Cases {
		if failed := c.Failure != nil; failed != strings.HasPrefix(c.Name, "Pod/shell") {
			t.Errorf("case %q failed=%v", c.Name, failed)
		} else if failed && !strings.Contains(c.Failure.Message, "requires the istio-proxy sidecar") {
			t.Errorf("failure message %q", c.Failure.Message)
		}
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("a: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "", "check", "-f", broken, "-f", filepath.Join(dir, "shell.yml"), "--namespace-labels", enabled, "-o", "json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if code != 1 || len(got) != 2 || got[0]["error"] == nil || got[1]["validation"] == nil {
		t.Fatalf("exit %d, want 1 with the broken file reported and the next file checked:\n%s", code, out)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, "", "check", "-f", filepath.Join(dir, "missing.yaml"), "-f", empty, "-f", filepath.Join(dir, "shell.yml"), "--namespace-labels", enabled)
	if code != 1 || !strings.Contains(out, "missing.yaml: ERROR") || !strings.Contains(out, "no .yaml, .yml or .json files") ||
		!strings.Contains(out, "Pod/shell") || !strings.Contains(stderr, "2 files or documents could not be checked") {
		t.Fatalf("exit %d, want 1 with a missing file and an empty directory reported and the next file checked:\n%s%s", code, out, stderr)
	}
}
