package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/engine/inject"
)

// TestRevisions walks docs/revisions.md against the real apiserver: one server serving revisions
// 1-31, 1-32 and 1-33; tags prod -> 1-31 and canary -> 1-32 set with `rego-injector tag set`,
// which also writes each tag's webhook configuration; namespace rev-prod on prod and rev-canary
// on canary. Moving prod to 1-32 moves the next pod of rev-prod without a restart; audit finds the
// running pods outdated and `rollout` restarts their Deployment onto 1-32; a broken bundle
// published for 1-33 is refused while the others serve; moving prod back and rolling out again is
// the rollback. Events and metrics name the revision and the tag.
func TestRevisions(t *testing.T) {
	e := need(t)
	ctx, client := t.Context(), e.cluster.Client
	bin := os.Getenv("REGO_INJECTOR_BIN")
	dir := t.TempDir()
	bundles := map[string]string{}
	var bundleArgs []string
	for rev, bundleRev := range map[string]string{"1-31": "bundle-31", "1-32": "bundle-32", "1-33": "bundle-33"} {
		bundles[rev] = filepath.Join(dir, rev)
		if err := writeBundle(bundles[rev], bundleRev, nil); err != nil {
			t.Fatal(err)
		}
		bundleArgs = append(bundleArgs, "--bundle", rev+"="+bundles[rev])
	}
	inj, err := startServe(e.cluster, bin, filepath.Join(dir, "serve"), append(bundleArgs, "--bundle-check-interval", "200ms")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inj.stop)
	pid := inj.proc.Cmd.Process.Pid

	// Where the tags' webhook configurations send pods: this server. Its own entry matches nothing.
	namespace(t, "rego-injector-system", nil)
	base := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "revisions-e2e"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "base.revisions-e2e.rego-injector.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr(inj.url + "/inject"), CABundle: inj.ca.CertPEM},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"e2e.rego-injector.io/never": "true"}},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, base, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), base.Name, metav1.DeleteOptions{})
	})

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", e.cluster.Kubeconfig)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rego-injector %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tag := func(args ...string) string {
		t.Helper()
		return cli(append([]string{"tag"}, append(args, "--webhook-configuration", base.Name)...)...)
	}
	tag("set", "prod", "--revision", "1-31")
	tag("set", "canary", "--revision", "1-32")
	t.Cleanup(func() {
		for _, name := range []string{"prod", "canary"} {
			cmd := exec.Command(bin, "tag", "remove", name, "--force", "--kubeconfig", e.cluster.Kubeconfig)
			cmd.Env = cleanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("tag remove %s: %v\n%s", name, err, out)
			}
		}
	})
	if out := tag("list"); !strings.Contains(out, "prod") || !strings.Contains(out, "canary") {
		t.Fatalf("tag list:\n%s", out)
	}
	namespace(t, "rev-prod", map[string]string{"istio.io/rev": "prod"})
	namespace(t, "rev-canary", map[string]string{"istio.io/rev": "canary"})
	waitServedBy(t, "rev-prod", "1-31", "prod", "bundle-31")
	waitServedBy(t, "rev-canary", "1-32", "canary", "bundle-32")
	if out := cli("precheck"); strings.Contains(strings.ToLower(out), "overlap:") {
		t.Fatalf("precheck finds overlaps among the configurations the tags made:\n%s", out)
	}

	// explain reads the cluster's labels and tags; --revision answers as a revision or tag.
	manifest := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(manifest, []byte(deploymentYAML("web")), 0o644); err != nil {
		t.Fatal(err)
	}
	explain := append([]string{"explain", "-f", manifest, "--namespace", "rev-prod"}, bundleArgs...)
	if out := cli(explain...); !strings.Contains(out, "[revision 1-31 through tag prod, bundle revision bundle-31]") {
		t.Errorf("explain in rev-prod:\n%s", out)
	}
	if out := cli(append(explain, "--revision", "canary")...); !strings.Contains(out, "[revision 1-32 through tag canary, bundle revision bundle-32]") {
		t.Errorf("explain --revision canary:\n%s", out)
	}
	if out := cli(append([]string{"check", "-f", manifest, "--namespace", "rev-prod", "--revision", "canary"}, bundleArgs...)...); !strings.Contains(out, "revision 1-32 through tag canary") {
		t.Errorf("check --revision canary:\n%s", out)
	}

	// A Deployment on prod, at 1-31.
	playKubelet(t, client, 500*time.Millisecond, "rev-prod")
	if _, stderr, err := e.cluster.kubectl(ctx, deploymentYAML("web"), "apply", "-n", "rev-prod", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	waitWebAt(t, "1-31", "bundle-31")
	if n := admissionsWith(t, inj, `revision="1-31"`, `result="injected"`); n < 2 {
		t.Errorf("rego_injector_admissions_total{revision=\"1-31\",result=\"injected\"} = %v, want at least 2", n)
	}
	if ev := waitEvent(t, "rev-prod", "Injected", "ReplicaSet"); !strings.Contains(ev.Message, "at revision 1-31 (tag prod), bundle revision bundle-31") {
		t.Errorf("the event does not name the revision and the tag: %q", ev.Message)
	}

	// The canary: prod moves to 1-32, without a restart.
	tag("set", "prod", "--revision", "1-32", "--overwrite")
	waitServedBy(t, "rev-prod", "1-32", "prod", "bundle-32")
	if inj.proc.Exited() || inj.proc.Cmd.Process.Pid != pid {
		t.Fatal("the server restarted")
	}
	audit := cli(append([]string{"audit", "--namespace", "rev-prod", "-o", "json"}, bundleArgs...)...)
	var report struct {
		Findings []struct {
			State      string `json:"state"`
			Have, Want struct {
				Rev, Revision string
			}
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(audit), &report); err != nil {
		t.Fatalf("%v:\n%s", err, audit)
	}
	outdated := 0
	for _, f := range report.Findings {
		if f.State == "outdated" && f.Have.Rev == "1-31" && f.Want.Rev == "1-32" && f.Want.Revision == "bundle-32" {
			outdated++
		}
	}
	if outdated != 2 {
		t.Fatalf("audit finds %d pods outdated at 1-31 wanting 1-32, want 2:\n%s", outdated, audit)
	}
	rollout := append([]string{"rollout", "--revision", "1-32", "--namespace", "rev-prod", "--timeout", "2m"}, bundleArgs...)
	if out := cli(rollout...); !strings.Contains(out, "would restart Deployment rev-prod/web") {
		t.Fatalf("rollout dry run:\n%s", out)
	}
	if out := cli(append(rollout, "--confirm")...); !strings.Contains(out, "Deployment rev-prod/web ready") {
		t.Fatalf("rollout:\n%s", out)
	}
	waitWebAt(t, "1-32", "bundle-32")

	// A broken bundle published for 1-33 is refused; 1-31 and 1-32 keep serving, and 1-33 keeps
	// its last good bundle.
	broken := filepath.Join(bundles["1-33"], "injector", "broken.rego")
	if err := os.WriteFile(broken, []byte("package injector.broken\n\nbroken := \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken 1-33 bundle refused", 30*time.Second, func() (bool, error) {
		return readyz(t, inj, "1-33", "lastError") != "", nil
	})
	if got := readyz(t, inj, "1-33", "revision"); got != "bundle-33" {
		t.Errorf("1-33 serves %q after the broken bundle, want its last good bundle-33", got)
	}
	waitServedBy(t, "rev-canary", "1-32", "canary", "bundle-32")
	waitServedBy(t, "rev-prod", "1-32", "prod", "bundle-32")

	// The rollback: prod back on 1-31, and its pods with it.
	tag("set", "prod", "--revision", "1-31", "--overwrite")
	waitServedBy(t, "rev-prod", "1-31", "prod", "bundle-31")
	// The broken 1-33 tree is left out: the command line refuses a bundle that does not compile.
	rollback := []string{"rollout", "--revision", "1-31", "--namespace", "rev-prod", "--timeout", "2m", "--confirm",
		"--bundle", "1-31=" + bundles["1-31"], "--bundle", "1-32=" + bundles["1-32"]}
	if out := cli(rollback...); !strings.Contains(out, "Deployment rev-prod/web ready") {
		t.Fatalf("rollback:\n%s", out)
	}
	waitWebAt(t, "1-31", "bundle-31")
}

// waitServedBy polls with dry-run pods until one created in ns comes back injected by revision
// rev through tag, at bundle revision bundle.
func waitServedBy(t *testing.T, ns, rev, tag, bundle string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a pod of %s injected by revision %s (tag %s)", ns, rev, tag), 30*time.Second, func() (bool, error) {
		pod, err := need(t).cluster.Client.CoreV1().Pods(ns).Create(t.Context(), simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		st := servedStatus(pod)
		return st != nil && st.Rev == rev && st.Tag == tag && st.Revision == bundle, nil
	})
}

// waitWebAt waits until every pod of Deployment web in rev-prod carries revision rev's sidecar at
// bundle revision bundle, and there are two of them.
func waitWebAt(t *testing.T, rev, bundle string) {
	t.Helper()
	client := need(t).cluster.Client
	waitFor(t, "the pods of rev-prod/web at revision "+rev, 2*time.Minute, func() (bool, error) {
		list, err := client.CoreV1().Pods("rev-prod").List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		live := 0
		for i := range list.Items {
			pod := &list.Items[i]
			if pod.DeletionTimestamp != nil {
				continue
			}
			st := servedStatus(pod)
			if st == nil || st.Rev != rev || st.Revision != bundle {
				return false, nil
			}
			live++
		}
		return live == 2, nil
	})
}

// servedStatus reads the pod's injection status as the engine does, nil when it has none.
func servedStatus(pod *corev1.Pod) *inject.Status {
	obj := map[string]any{"metadata": map[string]any{"annotations": map[string]any{}}}
	for k, v := range pod.Annotations {
		obj["metadata"].(map[string]any)["annotations"].(map[string]any)[k] = v
	}
	st, ok, err := inject.ReadStatus(obj)
	if !ok || err != nil {
		return nil
	}
	return &st
}

// readyz reads field of revision rev's bundle status in the server's /readyz.
func readyz(t *testing.T, inj *injectorProcess, rev, field string) string {
	t.Helper()
	resp, err := inj.httpClient().Get(inj.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Bundle map[string]map[string]any `json:"bundle"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("/readyz: %v\n%s", err, raw)
	}
	v, _ := body.Bundle[rev][field].(string)
	return v
}
