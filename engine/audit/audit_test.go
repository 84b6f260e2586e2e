package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/audit"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/report.txt with what the code produces now")

func activeInjector(t *testing.T, revision string) *injector.Injector {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = revision
	p, err := policy.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	inj := injector.New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}})
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	return inj
}

// replica is a pod of Deployment name, as the ReplicaSet controller creates it.
func replica(name, pod string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": pod, "namespace": "shop",
			"labels":          map[string]any{"app": name, "pod-template-hash": "7d9f"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name + "-7d9f", "uid": "u", "controller": true}},
		},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "nginx"}}},
	}
}

// injected is obj as inj injects it, or as it is when inj does not.
func injected(t *testing.T, inj *injector.Injector, obj map[string]any) map[string]any {
	t.Helper()
	in, err := injector.Offline(obj, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := inj.Inject(t.Context(), in)
	if err != nil || res.Pod == nil {
		t.Fatalf("not injected: %+v, %v", res.Decision, err)
	}
	return res.Pod
}

func typed(t *testing.T, obj map[string]any) corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	old, now := activeInjector(t, "default-1"), activeInjector(t, "default-2")

	optedOut := injected(t, now, replica("batch", "batch-1"))
	optedOut["metadata"].(map[string]any)["labels"].(map[string]any)["sidecar.istio.io/inject"] = "false"

	otherVariant := injected(t, now, replica("api", "api-1"))
	st, _, _ := inject.ReadStatus(otherVariant)
	st.Variant = "native"
	raw, _ := json.Marshal(st)
	otherVariant["metadata"].(map[string]any)["annotations"].(map[string]any)[inject.StatusAnnotation] = string(raw)

	broken := replica("odd", "odd-1")
	broken["metadata"].(map[string]any)["annotations"] = map[string]any{inject.StatusAnnotation: "{not json"}

	pods := []corev1.Pod{
		typed(t, injected(t, now, replica("web", "web-1"))),
		typed(t, replica("web", "web-2")),
		typed(t, replica("web", "web-3")),
		typed(t, injected(t, old, replica("shop", "shop-1"))),
		typed(t, injected(t, old, replica("shop", "shop-2"))),
		typed(t, optedOut),
		typed(t, otherVariant),
		typed(t, broken),
	}
	optOut := replica("tools", "tools-1")
	optOut["metadata"].(map[string]any)["labels"].(map[string]any)["sidecar.istio.io/inject"] = "false"
	pods = append(pods, typed(t, optOut))

	r, err := audit.Run(t.Context(), now, pods)
	if err != nil {
		t.Fatal(err)
	}
	want := map[audit.State]int{audit.StateCurrent: 1, audit.StateMissing: 2, audit.StateOutdated: 2, audit.StateUnexpected: 1, audit.StateVariant: 1, audit.StateError: 1, audit.StateNotInjected: 1}
	for _, s := range audit.States {
		if r.Pods[s] != want[s] {
			t.Errorf("%s: %d pods, want %d", s, r.Pods[s], want[s])
		}
	}
	if len(r.Findings) != 7 || r.Revision != "default-2" {
		t.Fatalf("%d findings at revision %q", len(r.Findings), r.Revision)
	}
	for _, f := range r.Findings {
		if f.State != audit.StateError && (f.Owner == nil || f.Owner.Kind != "Deployment") {
			t.Errorf("%s: owner %+v, want its Deployment", f.Pod, f.Owner)
		}
	}

	var table bytes.Buffer
	if err := audit.WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.txt")
	if *update {
		if err := os.WriteFile(golden, table.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantTable, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if table.String() != string(wantTable) {
		t.Errorf("table differs from %s (go test -update rewrites it):\n%s", golden, table.String())
	}
	if !strings.Contains(table.String(), "kubectl rollout restart -n shop deployment/shop") {
		t.Error("no restart hint for the outdated Deployment")
	}
}

func TestRunWithoutRevision(t *testing.T) {
	inj := injector.New(cluster.Static{})
	if _, err := audit.Run(t.Context(), inj, []corev1.Pod{typed(t, replica("web", "web-1"))}); !errors.Is(err, injector.ErrNotActive) {
		t.Fatalf("an audit without an active revision: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := audit.Run(ctx, activeInjector(t, "default-1"), []corev1.Pod{typed(t, replica("web", "web-1"))}); !errors.Is(err, context.Canceled) {
		t.Fatalf("an audit after its context ended: %v", err)
	}
}

// TestRevisionChangeInterruptsAudit: a swap between two pages makes the audit fail rather than mix
// two revisions' verdicts.
func TestRevisionChangeInterruptsAudit(t *testing.T) {
	inj := activeInjector(t, "default-1")
	var a audit.Auditor
	if err := a.Judge(t.Context(), inj, []corev1.Pod{typed(t, replica("web", "web-1"))}); err != nil {
		t.Fatal(err)
	}
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = "default-2"
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	if err := a.Judge(t.Context(), inj, []corev1.Pod{typed(t, replica("web", "web-2"))}); !errors.Is(err, audit.ErrRevisionChanged) {
		t.Fatalf("a swap during the audit: %v", err)
	}
}

// TestAuditJudgesAsTheRequester: a variant reserved to a group, honoured at admission because the
// requester was in it, is current on audit (which has no request): the status annotation records
// the requester, and audit asks policy as that requester. A hand-made status naming another
// requester is judged as that one, who may not have the variant.
func TestAuditJudgesAsTheRequester(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Data["injector"].(map[string]any)["config"].(map[string]any)["privileged_variants"] = map[string]any{"proxy-only": map[string]any{"groups": []any{"mesh-admins"}}}
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	inj := injector.New(cluster.Static{Labels: map[string]string{"istio-injection": "enabled"}})
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	obj := replica("db", "db-7d9f-x1")
	obj["metadata"].(map[string]any)["annotations"] = map[string]any{"rego-injector.io/variant": "proxy-only"}
	in, err := injector.Offline(obj, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	in.Request.UserInfo.Username, in.Request.UserInfo.Groups = "alice", []string{"mesh-admins", "system:authenticated"}
	res, err := inj.Inject(t.Context(), in)
	if err != nil || res.Pod == nil || res.Decision.Variant != "proxy-only" {
		t.Fatalf("setup: the admin's pod did not get proxy-only: %+v, %v", res.Decision, err)
	}
	st, _, err := inject.ReadStatus(res.Pod)
	if err != nil || st.Requester == nil || st.Requester.Username != "alice" || len(st.Reserved) != 1 {
		t.Fatalf("status records no requester: %+v, %v", st, err)
	}
	report, err := audit.Run(t.Context(), inj, []corev1.Pod{typed(t, res.Pod)})
	if err != nil {
		t.Fatal(err)
	}
	if report.Pods[audit.StateCurrent] != 1 {
		t.Fatalf("a pod admitted with a variant its requester may use is not current: %+v", report)
	}

	forged := res.Pod
	annotations := forged["metadata"].(map[string]any)["annotations"].(map[string]any)
	st.Requester = &inject.Requester{Username: "mallory"}
	raw, _ := json.Marshal(st)
	annotations[inject.StatusAnnotation] = string(raw)
	report, err = audit.Run(t.Context(), inj, []corev1.Pod{typed(t, forged)})
	if err != nil {
		t.Fatal(err)
	}
	if report.Pods[audit.StateVariant] != 1 {
		t.Fatalf("a pod whose requester may not use its variant is not reported: %+v", report)
	}
}
