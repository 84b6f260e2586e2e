package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/audit"
	namespaces "github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/rollout"
)

// neverReady marks the pods the stand-in kubelet leaves unready.
const neverReady = "e2e.rego-injector.io/never-ready"

// TestRollout restarts workloads whose pods an audit at a newer revision finds outdated, playing
// the kubelet that this cluster lacks: a dry run changes nothing; a confirmed run restarts two
// Deployments and a StatefulSet one after the other, each once the one before is ready, and
// leaves a bare pod and a Job's pod alone; a Deployment whose pods never become ready stops the
// run, the workload after it untouched.
func TestRollout(t *testing.T) {
	e := need(t)
	client := e.cluster.Client
	enabled := map[string]string{"istio-injection": "enabled"}
	namespace(t, "rollout", enabled)
	namespace(t, "rollout-stuck", enabled)
	waitEnabled(t, "rollout")
	waitEnabled(t, "rollout-stuck")
	playKubelet(t, client, time.Second, "rollout", "rollout-stuck")

	ctx := t.Context()
	create := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"web-a", "web-b"} {
		_, err := client.AppsV1().Deployments("rollout").Create(ctx, testDeployment(name, false), metav1.CreateOptions{})
		create(err)
	}
	_, err := client.AppsV1().StatefulSets("rollout").Create(ctx, testStatefulSet("db"), metav1.CreateOptions{})
	create(err)
	_, err = client.CoreV1().Pods("rollout").Create(ctx, simplePod("bare", "nginx"), metav1.CreateOptions{})
	create(err)
	_, err = client.BatchV1().Jobs("rollout").Create(ctx, testJob("batch"), metav1.CreateOptions{})
	create(err)
	_, err = client.AppsV1().Deployments("rollout-stuck").Create(ctx, testDeployment("a-stuck", true), metav1.CreateOptions{})
	create(err)
	_, err = client.AppsV1().Deployments("rollout-stuck").Create(ctx, testDeployment("b-later", false), metav1.CreateOptions{})
	create(err)

	waitFor(t, "the workloads' pods ready", 90*time.Second, func() (bool, error) {
		for _, name := range []string{"web-a", "web-b"} {
			if d, err := client.AppsV1().Deployments("rollout").Get(ctx, name, metav1.GetOptions{}); err != nil || d.Status.AvailableReplicas != 2 {
				return false, err
			}
		}
		st, err := client.AppsV1().StatefulSets("rollout").Get(ctx, "db", metav1.GetOptions{})
		if err != nil || st.Status.AvailableReplicas != 2 {
			return false, err
		}
		d, err := client.AppsV1().Deployments("rollout-stuck").Get(ctx, "b-later", metav1.GetOptions{})
		if err != nil || d.Status.AvailableReplicas != 2 {
			return false, err
		}
		pods, err := client.CoreV1().Pods("rollout").List(ctx, metav1.ListOptions{LabelSelector: "app in (bare, batch)"})
		return err == nil && len(pods.Items) == 2 && ready(&pods.Items[0]) && ready(&pods.Items[1]), err
	})

	// The injector serves revision default-1; the audit judges by default-2.
	plan := func(ns string) rollout.Plan {
		t.Helper()
		r, err := audit.RunCluster(ctx, injectorAt(t, "default-2"), client, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range r.Findings {
			if f.State != audit.StateOutdated {
				t.Fatalf("%s/%s: %s (%s), want every pod outdated", f.Namespace, f.Pod, f.State, f.Reason)
			}
		}
		return rollout.NewPlan(r.Findings)
	}
	p := plan("rollout")
	if got := targetNames(p.Restart); got != "Deployment rollout/web-a, Deployment rollout/web-b, StatefulSet rollout/db" {
		t.Fatalf("restart: %s", got)
	}
	if got := targetNames(p.Unsafe); got != "Job rollout/batch, Pod rollout/bare" || len(p.Manual) != 0 {
		t.Fatalf("unsafe: %s; manual: %s", got, targetNames(p.Manual))
	}
	before := snapshot(t, client, "rollout")

	t.Run("dry run", func(t *testing.T) {
		var out bytes.Buffer
		res, err := rollout.Run(ctx, client, p, rollout.Options{Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pending) != 3 || len(res.Skipped) != 2 || len(res.Restarted)+len(res.Failed) != 0 {
			t.Errorf("result %+v", res)
		}
		for _, line := range []string{
			"would restart Deployment rollout/web-a (2 pods: 2 at revision default-1)\n",
			"would restart StatefulSet rollout/db (2 pods: 2 at revision default-1)\n",
			"leaving Pod rollout/bare (1 pod: 1 at revision default-1) alone: it has no controller",
			"dry run: nothing was changed\n",
		} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("the dry run did not say %q:\n%s", line, out.String())
			}
		}
		if after := snapshot(t, client, "rollout"); after != before {
			t.Errorf("the dry run changed the namespace:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("one at a time", func(t *testing.T) {
		events := recordDeployments(t, client, "rollout")
		var out bytes.Buffer
		res, err := rollout.Run(ctx, client, p, rollout.Options{Confirm: true, Out: &out, Poll: 100 * time.Millisecond, Timeout: 2 * time.Minute})
		t.Log(out.String())
		if err != nil {
			t.Fatal(err)
		}
		if got := outcomeNames(res.Restarted); got != "Deployment rollout/web-a, Deployment rollout/web-b, StatefulSet rollout/db" || len(res.Failed)+len(res.Pending) != 0 {
			t.Fatalf("restarted %s; result %+v", got, res)
		}
		if !strings.Contains(out.String(), "restarting Deployment rollout/web-a (2 pods: 2 at revision default-1)\n") ||
			!strings.Contains(out.String(), "Deployment rollout/web-a ready in ") {
			t.Errorf("no progress lines for web-a:\n%s", out.String())
		}
		a, b := restartedAt(t, client, "web-a"), restartedAt(t, client, "web-b")
		if a == "" || b == "" || b < a {
			t.Fatalf("restartedAt web-a %q, web-b %q", a, b)
		}
		ev := events()
		readyA, startB := ev.first("web-a", a, true), ev.first("web-b", b, false)
		if readyA < 0 || startB < 0 || startB < readyA {
			t.Errorf("web-b restarted before web-a was ready (events %d and %d):\n%s", startB, readyA, ev)
		}
		after := snapshot(t, client, "rollout")
		for _, kept := range []string{"Pod bare uid=", "Pod batch-"} {
			if line := lineOf(before, kept); line == "" || !strings.Contains(after, line) {
				t.Errorf("%q changed:\nbefore %s\nafter  %s", kept, before, after)
			}
		}
		if line := lineOf(before, "Job batch"); !strings.Contains(after, line) {
			t.Errorf("the Job changed:\nbefore %s\nafter  %s", before, after)
		}
		for _, replaced := range []string{"Pod web-a-", "Pod web-b-", "Pod db-0", "Pod db-1"} {
			if line := lineOf(before, replaced); line == "" || strings.Contains(after, line) {
				t.Errorf("%q not replaced:\nbefore %s\nafter  %s", replaced, before, after)
			}
		}
	})

	t.Run("two at once", func(t *testing.T) {
		// Two may restart at once: web-b starts while web-a still rolls.
		time.Sleep(time.Second) // restartedAt has a resolution of a second
		events := recordDeployments(t, client, "rollout")
		res, err := rollout.Run(ctx, client, rollout.Plan{Restart: p.Restart[:2]}, rollout.Options{Confirm: true, MaxUnavailable: 2, Poll: 100 * time.Millisecond, Timeout: 2 * time.Minute})
		if err != nil || len(res.Restarted) != 2 {
			t.Fatalf("%v: %+v", err, res)
		}
		a, b := restartedAt(t, client, "web-a"), restartedAt(t, client, "web-b")
		ev := events()
		if readyA, startB := ev.first("web-a", a, true), ev.first("web-b", b, false); startB < 0 || readyA < startB {
			t.Errorf("web-b restarted only after web-a was ready (events %d and %d):\n%s", startB, readyA, ev)
		}
	})

	t.Run("stops at a workload never ready", func(t *testing.T) {
		sp := plan("rollout-stuck")
		if got := targetNames(sp.Restart); got != "Deployment rollout-stuck/a-stuck, Deployment rollout-stuck/b-later" {
			t.Fatalf("restart: %s", got)
		}
		later, err := client.AppsV1().Deployments("rollout-stuck").Get(ctx, "b-later", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		start := time.Now()
		res, err := rollout.Run(ctx, client, sp, rollout.Options{Confirm: true, Out: &out, Poll: 100 * time.Millisecond, Timeout: 5 * time.Second})
		t.Log(out.String())
		if !errors.Is(err, rollout.ErrNotReady) || !strings.Contains(err.Error(), "Deployment rollout-stuck/a-stuck not ready after 5s") {
			t.Fatalf("error %v, want a-stuck not ready", err)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("Run gave up after %s, with a timeout of 5s", took)
		}
		if outcomeNames(res.Failed) != "Deployment rollout-stuck/a-stuck" || targetNames(res.Pending) != "Deployment rollout-stuck/b-later" || len(res.Restarted) != 0 {
			t.Errorf("result %+v", res)
		}
		for _, want := range []string{"condition Available=", "  pod a-stuck-", "not started: Deployment rollout-stuck/b-later"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the output does not say %q", want)
			}
		}
		now, err := client.AppsV1().Deployments("rollout-stuck").Get(ctx, "b-later", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if now.Generation != later.Generation || now.Spec.Template.Annotations[rollout.RestartedAtAnnotation] != "" {
			t.Errorf("b-later was touched: generation %d → %d, template annotations %v", later.Generation, now.Generation, now.Spec.Template.Annotations)
		}
	})
}

// waitEnabled waits until the injector sees namespace ns enabled: a server-side dry-run pod there
// comes back injected.
func waitEnabled(t *testing.T, ns string) {
	t.Helper()
	waitFor(t, "the injector to see "+ns+" enabled", 10*time.Second, func() (bool, error) {
		pod, err := need(t).cluster.Client.CoreV1().Pods(ns).Create(t.Context(), simplePod("probe", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && hasContainer(pod, "istio-proxy"), nil
	})
}

// waitFor polls done until it returns true, failing the test after timeout or on an error.
func waitFor(t *testing.T, what string, timeout time.Duration, done func() (bool, error)) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		ok, err := done()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
	}
}

// playKubelet stands in for the kubelet this cluster lacks until the test ends: it marks the pods
// of namespaces running and ready through the pods/status subresource, delay after it first sees
// them, except pods labelled neverReady.
func playKubelet(t *testing.T, client kubernetes.Interface, delay time.Duration, namespaces ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	seen := map[types.UID]time.Time{}
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, ns := range namespaces {
				list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					continue
				}
				for i := range list.Items {
					pod := &list.Items[i]
					if _, ok := seen[pod.UID]; !ok {
						seen[pod.UID] = time.Now()
					}
					if pod.DeletionTimestamp != nil || pod.Labels[neverReady] != "" || ready(pod) || time.Since(seen[pod.UID]) < delay {
						continue
					}
					markReady(pod)
					// A conflict or a pod deleted meanwhile is retried, or dropped, on the next pass.
					_, _ = client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// markReady sets pod's status as a kubelet reports a pod whose containers all run and pass their
// readiness probes.
func markReady(pod *corev1.Pod) {
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, c := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
}

func ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// injectorAt is an injector of the default bundle at revision rev, every namespace enabled.
func injectorAt(t *testing.T, rev string) *injector.Injector {
	t.Helper()
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = rev
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	inj := injector.New(namespaces.Static{Labels: map[string]string{"istio-injection": "enabled"}})
	if err := inj.Activate(p); err != nil {
		t.Fatal(err)
	}
	return inj
}

func testDeployment(name string, unready bool) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	if unready {
		labels[neverReady] = "true"
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
			},
		},
	}
}

func testStatefulSet(name string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr[int32](2),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "postgres"}}},
			},
		},
	}
}

func testJob(name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "work", Image: "busybox"}},
				},
			},
		},
	}
}

// snapshot is the namespace's workloads and pods, one line each: kind, name, uid, generation,
// restartedAt, in name order.
func snapshot(t *testing.T, client kubernetes.Interface, ns string) string {
	t.Helper()
	ctx := t.Context()
	var lines []string
	line := func(kind string, meta metav1.ObjectMeta, template *corev1.PodTemplateSpec) {
		s := fmt.Sprintf("%s %s uid=%s generation=%d", kind, meta.Name, meta.UID, meta.Generation)
		if template != nil {
			s += " restartedAt=" + template.Annotations[rollout.RestartedAtAnnotation]
		}
		lines = append(lines, s)
	}
	deployments, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments.Items {
		line("Deployment", d.ObjectMeta, &d.Spec.Template)
	}
	sets, err := client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets.Items {
		line("StatefulSet", s.ObjectMeta, &s.Spec.Template)
	}
	jobs, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Items {
		line("Job", j.ObjectMeta, &j.Spec.Template)
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		line("Pod", p.ObjectMeta, nil)
	}
	return strings.Join(lines, "\n")
}

// lineOf is the line of snapshot s that starts with prefix, "" when none does.
func lineOf(s, prefix string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func restartedAt(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	d, err := client.AppsV1().Deployments("rollout").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations[rollout.RestartedAtAnnotation]
}

// deploymentEvent is a Deployment as one watch event showed it.
type deploymentEvent struct {
	name, restartedAt string
	// complete: the controller has seen the spec, and every replica is updated and available.
	complete bool
}

type deploymentEvents []deploymentEvent

// first is the index of the first event showing Deployment name restarted at, and complete if
// complete is true; -1 when none does.
func (ev deploymentEvents) first(name, at string, complete bool) int {
	for i, e := range ev {
		if e.name == name && e.restartedAt == at && (e.complete || !complete) {
			return i
		}
	}
	return -1
}

func (ev deploymentEvents) String() string {
	var b strings.Builder
	for i, e := range ev {
		fmt.Fprintf(&b, "%d %s restartedAt=%q complete=%v\n", i, e.name, e.restartedAt, e.complete)
	}
	return b.String()
}

// recordDeployments watches the Deployments of ns, in the apiserver's order, until the function
// it returns is called, which returns what the watch saw.
func recordDeployments(t *testing.T, client kubernetes.Interface, ns string) func() deploymentEvents {
	t.Helper()
	w, err := client.AppsV1().Deployments(ns).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var events deploymentEvents
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.ResultChan() {
			d, ok := e.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			want := *d.Spec.Replicas
			s := d.Status
			events = append(events, deploymentEvent{
				name:        d.Name,
				restartedAt: d.Spec.Template.Annotations[rollout.RestartedAtAnnotation],
				complete:    s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want,
			})
		}
	}()
	var once sync.Once
	stop := func() deploymentEvents {
		once.Do(w.Stop)
		<-done
		return events
	}
	t.Cleanup(func() { stop() })
	return stop
}

func targetNames(ts []rollout.Target) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

func outcomeNames(os []rollout.Outcome) string {
	names := make([]string, len(os))
	for i, o := range os {
		names[i] = o.Target.String()
	}
	return strings.Join(names, ", ")
}
