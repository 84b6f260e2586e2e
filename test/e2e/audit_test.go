package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rego-injector/rego-injector/test/bundletree"
)

// TestAudit: pods created before their namespace was enabled are reported missing; pods injected
// at the running revision are current, and outdated against a bundle at a newer revision.
func TestAudit(t *testing.T) {
	e := need(t)
	namespace(t, "audit", nil)
	deploy := func(name string) {
		t.Helper()
		if _, stderr, err := e.cluster.kubectl(t.Context(), deploymentYAML(name), "apply", "-n", "audit", "-f", "-"); err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		waitPods(t, "audit", "app="+name, 2)
	}
	deploy("late")
	patch := []byte(`{"metadata":{"labels":{"istio-injection":"enabled"}}}`)
	if _, err := e.cluster.Client.CoreV1().Namespaces().Patch(t.Context(), "audit", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pod, err := e.cluster.Client.CoreV1().Pods("audit").Create(t.Context(), simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && hasContainer(pod, "istio-proxy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the injector does not see the namespace enabled after 10 s (%v)", err)
		}
	}
	deploy("fresh")

	type report struct {
		Revision string         `json:"revision"`
		Pods     map[string]int `json:"pods"`
		Findings []struct {
			Pod   string `json:"pod"`
			State string `json:"state"`
			Owner struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"owner"`
		} `json:"findings"`
	}
	audit := func(args ...string) report {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), os.Getenv("REGO_INJECTOR_BIN"), append([]string{"audit", "--kubeconfig", e.cluster.Kubeconfig, "--namespace", "audit", "-o", "json"}, args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("rego-injector audit: %v\n%s", err, out)
		}
		var r report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return r
	}
	r := audit()
	if r.Pods["missing"] != 2 || r.Pods["current"] != 2 || len(r.Findings) != 2 {
		t.Fatalf("audit at the running revision: %+v", r)
	}
	for _, f := range r.Findings {
		if f.State != "missing" || f.Owner.Kind != "Deployment" || f.Owner.Name != "late" {
			t.Errorf("finding %+v, want the late Deployment's pods missing", f)
		}
	}

	// serve --audit-interval exports the same counts, over the whole cluster.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := e.injector.httpClient().Get(e.injector.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := gauge(string(body), `rego_injector_audit_pods{state="missing"}`); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rego_injector_audit_pods{state=\"missing\"} never reached 2:\n%s", body)
		}
	}

	// --fail turns findings into exit status 1, for a CronJob or a pipeline.
	failing := exec.CommandContext(t.Context(), os.Getenv("REGO_INJECTOR_BIN"), "audit", "--kubeconfig", e.cluster.Kubeconfig, "--namespace", "audit", "--fail")
	failing.Env = cleanEnv()
	if out, err := failing.CombinedOutput(); err == nil || !strings.Contains(string(out), "2 pods disagree with policy") {
		t.Errorf("audit --fail with two missing pods: %v\n%s", err, out)
	}

	r = audit("--bundle", bundleAt(t, "default-2"))
	if r.Revision != "default-2" || r.Pods["missing"] != 2 || r.Pods["outdated"] != 2 {
		t.Fatalf("audit against a newer revision: %+v", r)
	}
}

// gauge reads the value of series from a Prometheus text exposition, -1 when absent.
func gauge(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(value, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// bundleAt writes the default bundle at revision rev, as writeBundle does, to a test directory.
func bundleAt(t *testing.T, rev string) string {
	t.Helper()
	dir := t.TempDir()
	if err := writeBundle(dir, rev, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeBundle writes the default bundle, policies included and tests left out, at revision rev into
// dir; edit, when not nil, changes its settings (data.injector.config) first.
func writeBundle(dir, rev string, edit func(config map[string]any)) error {
	return bundletree.Write(filepath.Join("..", ".."), dir, rev, edit)
}

// TestCheckAgainstCluster: check reads the namespaces' labels from the cluster: the same manifest
// passes in an enabled namespace and is refused where the namespace requires the sidecar and the
// pod opts out.
func TestCheckAgainstCluster(t *testing.T) {
	e := need(t)
	namespace(t, "check-open", map[string]string{"istio-injection": "enabled"})
	namespace(t, "check-strict", map[string]string{"istio-injection": "enabled", "rego-injector.io/require-sidecar": "true"})
	manifest := filepath.Join(t.TempDir(), "app.yaml")
	app := `apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: NS}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app, sidecar.istio.io/inject: "false"}}
    spec:
      containers: [{name: app, image: nginx}]
`
	for ns, wantExit := range map[string]int{"check-open": 0, "check-strict": 1} {
		if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(app, "NS", ns)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), os.Getenv("REGO_INJECTOR_BIN"), "check", "--kubeconfig", e.cluster.Kubeconfig, "-f", manifest, "-o", "junit")
		cmd.Env = cleanEnv()
		out, err := cmd.Output()
		code := 0
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatalf("rego-injector check: %v", err)
		}
		if code != wantExit {
			t.Errorf("%s: exit %d, want %d\n%s", ns, code, wantExit, out)
		}
		if wantExit == 1 && !strings.Contains(string(out), "requires the istio-proxy sidecar") {
			t.Errorf("%s: the report does not say why:\n%s", ns, out)
		}
	}
}
