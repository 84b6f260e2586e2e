package rollout

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RestartedAtAnnotation is the pod template annotation `kubectl rollout restart` sets, and Run too.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// progress is how a workload's rollout stands, read from its spec and status.
type progress struct {
	// skip says why restarting would not roll the workload; "" when it would.
	skip string
	// done: the rollout is complete and every desired pod is available.
	done bool
	// waiting says what the rollout waits for when it is not done.
	waiting string
	// stuck says why the controller gave up on the rollout (a Deployment's progress deadline).
	stuck string
	// conditions are the workload's status conditions, one "Type=Status (Reason): Message" each.
	conditions []string
	// selector selects the workload's pods.
	selector *metav1.LabelSelector
}

// read reads t's workload and how its rollout stands.
func read(ctx context.Context, client kubernetes.Interface, t Target) (progress, error) {
	apps := client.AppsV1()
	get := metav1.GetOptions{}
	switch t.Owner.Kind {
	case "Deployment":
		d, err := apps.Deployments(t.Namespace).Get(ctx, t.Owner.Name, get)
		if err != nil {
			return progress{}, err
		}
		return deploymentProgress(d), nil
	case "StatefulSet":
		s, err := apps.StatefulSets(t.Namespace).Get(ctx, t.Owner.Name, get)
		if err != nil {
			return progress{}, err
		}
		return statefulSetProgress(s), nil
	case "DaemonSet":
		d, err := apps.DaemonSets(t.Namespace).Get(ctx, t.Owner.Name, get)
		if err != nil {
			return progress{}, err
		}
		return daemonSetProgress(d), nil
	}
	return progress{}, fmt.Errorf("%s: not a kind Run restarts", t)
}

// restartWorkload sets the restartedAt annotation of t's pod template to at, as `kubectl rollout
// restart` does, so that its controller replaces every pod.
func restartWorkload(ctx context.Context, client kubernetes.Interface, t Target, at string) error {
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAtAnnotation, at)
	apps := client.AppsV1()
	opts := metav1.PatchOptions{FieldManager: "rego-injector"}
	var err error
	switch t.Owner.Kind {
	case "Deployment":
		_, err = apps.Deployments(t.Namespace).Patch(ctx, t.Owner.Name, types.MergePatchType, patch, opts)
	case "StatefulSet":
		_, err = apps.StatefulSets(t.Namespace).Patch(ctx, t.Owner.Name, types.MergePatchType, patch, opts)
	case "DaemonSet":
		_, err = apps.DaemonSets(t.Namespace).Patch(ctx, t.Owner.Name, types.MergePatchType, patch, opts)
	default:
		err = fmt.Errorf("not a kind Run restarts")
	}
	if err != nil {
		return fmt.Errorf("restart %s: %w", t, err)
	}
	return nil
}

// count is "1 pod", "2 pods".
func count[N ~int | ~int32](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// replicas is a workload's desired replicas: spec.replicas, 1 when unset.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// deploymentProgress: complete when the controller has seen the latest spec, every pod is
// updated, no old pod is left and every pod is available, as `kubectl rollout status` waits.
func deploymentProgress(d *appsv1.Deployment) progress {
	p := progress{selector: d.Spec.Selector}
	for _, c := range d.Status.Conditions {
		p.conditions = append(p.conditions, condition(string(c.Type), c.Status, c.Reason, c.Message))
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			p.stuck = "progress deadline exceeded: " + c.Message
		}
	}
	want, s := replicas(d.Spec.Replicas), d.Status
	switch {
	case d.Spec.Paused:
		p.skip = "it is paused, so a restart would not roll it until resumed (kubectl rollout resume)"
	case s.ObservedGeneration < d.Generation:
		p.waiting = "the controller has not seen the restart yet"
	case s.UpdatedReplicas < want:
		p.waiting = fmt.Sprintf("%d of %d pods updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		p.waiting = fmt.Sprintf("%s left", count(s.Replicas-s.UpdatedReplicas, "old pod"))
	case s.AvailableReplicas < want:
		p.waiting = fmt.Sprintf("%d of %d updated pods available", s.AvailableReplicas, want)
	default:
		p.done = true
	}
	if p.done || s.ObservedGeneration < d.Generation {
		p.stuck = "" // complete, or a condition from before the restart
	}
	return p
}

// statefulSetProgress: complete when the controller has seen the latest spec, every pod is
// ready, the current revision is the update revision and every pod is available. A StatefulSet
// that updates OnDelete, or whose rolling update is partitioned, is skipped: a restart would
// replace none of its pods, or only some.
func statefulSetProgress(st *appsv1.StatefulSet) progress {
	p := progress{selector: st.Spec.Selector}
	for _, c := range st.Status.Conditions {
		p.conditions = append(p.conditions, condition(string(c.Type), c.Status, c.Reason, c.Message))
	}
	want, s := replicas(st.Spec.Replicas), st.Status
	ru := st.Spec.UpdateStrategy.RollingUpdate
	switch {
	case st.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType:
		p.skip = "it updates OnDelete, so a restart would replace none of its pods: delete them one at a time"
	case ru != nil && ru.Partition != nil && *ru.Partition > 0:
		p.skip = fmt.Sprintf("its rolling update is partitioned at %d, so a restart would leave the pods below that ordinal as they are", *ru.Partition)
	case s.ObservedGeneration < st.Generation:
		p.waiting = "the controller has not seen the restart yet"
	case s.UpdatedReplicas < want:
		p.waiting = fmt.Sprintf("%d of %d pods updated", s.UpdatedReplicas, want)
	case s.ReadyReplicas < want:
		p.waiting = fmt.Sprintf("%d of %d pods ready", s.ReadyReplicas, want)
	case s.UpdateRevision != s.CurrentRevision:
		p.waiting = fmt.Sprintf("revision %s not yet current", s.UpdateRevision)
	case s.AvailableReplicas < want:
		p.waiting = fmt.Sprintf("%d of %d pods available", s.AvailableReplicas, want)
	default:
		p.done = true
	}
	return p
}

// daemonSetProgress: complete when the controller has seen the latest spec and every node's pod
// is updated and available. A DaemonSet that updates OnDelete is skipped.
func daemonSetProgress(d *appsv1.DaemonSet) progress {
	p := progress{selector: d.Spec.Selector}
	for _, c := range d.Status.Conditions {
		p.conditions = append(p.conditions, condition(string(c.Type), c.Status, c.Reason, c.Message))
	}
	s := d.Status
	switch {
	case d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType:
		p.skip = "it updates OnDelete, so a restart would replace none of its pods: delete them one at a time"
	case s.ObservedGeneration < d.Generation:
		p.waiting = "the controller has not seen the restart yet"
	case s.UpdatedNumberScheduled < s.DesiredNumberScheduled:
		p.waiting = fmt.Sprintf("%d of %d pods updated", s.UpdatedNumberScheduled, s.DesiredNumberScheduled)
	case s.NumberAvailable < s.DesiredNumberScheduled:
		p.waiting = fmt.Sprintf("%d of %d updated pods available", s.NumberAvailable, s.DesiredNumberScheduled)
	default:
		p.done = true
	}
	return p
}

func condition(typ string, status corev1.ConditionStatus, reason, message string) string {
	s := typ + "=" + string(status)
	if reason != "" {
		s += " (" + reason + ")"
	}
	if message != "" {
		s += ": " + message
	}
	return s
}

// maxPodsShown bounds the pods a failure lists.
const maxPodsShown = 5

// unreadyPods lists, for a failure message, the pods selected by selector that are not ready:
// name, phase and the Ready condition's reason and message.
func unreadyPods(ctx context.Context, client kubernetes.Interface, namespace string, selector *metav1.LabelSelector) ([]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []string
	for _, pod := range list.Items {
		ready := "Ready condition not set"
		isReady := false
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = condition("Ready", c.Status, c.Reason, c.Message)
				isReady = c.Status == corev1.ConditionTrue
			}
		}
		if isReady {
			continue
		}
		if len(out) == maxPodsShown {
			out = append(out, "…")
			break
		}
		phase := string(pod.Status.Phase)
		if pod.DeletionTimestamp != nil {
			phase += ", terminating"
		}
		out = append(out, fmt.Sprintf("%s: %s, %s", pod.Name, phase, strings.TrimSpace(ready)))
	}
	return out, nil
}
