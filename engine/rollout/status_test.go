package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

// check compares a progress with the state wanted: "done", "skip", "stuck" or the waiting text.
func check(t *testing.T, name string, p progress, want string) {
	t.Helper()
	got := p.waiting
	switch {
	case p.done:
		got = "done"
	case p.skip != "":
		got = "skip"
	case p.stuck != "":
		got = "stuck"
	}
	if got != want {
		t.Errorf("%s: %s (%+v), want %s", name, got, p, want)
	}
}

func TestDeploymentProgress(t *testing.T) {
	complete := appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-5c" has timed out progressing.`}
	for _, tc := range []struct {
		name   string
		paused bool
		unset  bool // spec.replicas unset
		status func(*appsv1.DeploymentStatus)
		want   string
	}{
		{name: "complete", want: "done"},
		{name: "replicas unset means 1", unset: true, status: func(s *appsv1.DeploymentStatus) {
			s.Replicas, s.UpdatedReplicas, s.AvailableReplicas = 1, 1, 1
		}, want: "done"},
		{name: "paused", paused: true, want: "skip"},
		{name: "not observed", status: func(s *appsv1.DeploymentStatus) { s.ObservedGeneration = 1 }, want: "the controller has not seen the restart yet"},
		{name: "updating", status: func(s *appsv1.DeploymentStatus) { s.UpdatedReplicas = 1 }, want: "1 of 3 pods updated"},
		{name: "old pods left", status: func(s *appsv1.DeploymentStatus) { s.Replicas = 4 }, want: "1 old pod left"},
		{name: "not available", status: func(s *appsv1.DeploymentStatus) { s.AvailableReplicas = 2 }, want: "2 of 3 updated pods available"},
		{name: "deadline exceeded", status: func(s *appsv1.DeploymentStatus) {
			s.AvailableReplicas = 2
			s.Conditions = []appsv1.DeploymentCondition{deadline}
		}, want: "stuck"},
		{name: "deadline of the previous generation", status: func(s *appsv1.DeploymentStatus) {
			s.ObservedGeneration = 1
			s.Conditions = []appsv1.DeploymentCondition{deadline}
		}, want: "the controller has not seen the restart yet"},
		{name: "deadline then complete", status: func(s *appsv1.DeploymentStatus) {
			s.Conditions = []appsv1.DeploymentCondition{deadline}
		}, want: "done"},
	} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: complete}
		d.Spec.Replicas, d.Spec.Paused = ptr[int32](3), tc.paused
		if tc.unset {
			d.Spec.Replicas = nil
		}
		if tc.status != nil {
			tc.status(&d.Status)
		}
		check(t, tc.name, deploymentProgress(d), tc.want)
	}
}

func TestStatefulSetProgress(t *testing.T) {
	complete := appsv1.StatefulSetStatus{ObservedGeneration: 4, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2, CurrentReplicas: 2, CurrentRevision: "db-7b", UpdateRevision: "db-7b"}
	for _, tc := range []struct {
		name     string
		strategy appsv1.StatefulSetUpdateStrategy
		status   func(*appsv1.StatefulSetStatus)
		want     string
	}{
		{name: "complete", want: "done"},
		{name: "on delete", strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}, want: "skip"},
		{name: "partitioned", strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr[int32](1)}}, want: "skip"},
		{name: "partition 0", strategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr[int32](0)}}, want: "done"},
		{name: "not observed", status: func(s *appsv1.StatefulSetStatus) { s.ObservedGeneration = 3 }, want: "the controller has not seen the restart yet"},
		{name: "updating", status: func(s *appsv1.StatefulSetStatus) { s.UpdatedReplicas = 1 }, want: "1 of 2 pods updated"},
		{name: "not ready", status: func(s *appsv1.StatefulSetStatus) { s.ReadyReplicas = 1 }, want: "1 of 2 pods ready"},
		{name: "revision not current", status: func(s *appsv1.StatefulSetStatus) { s.CurrentRevision = "db-6a" }, want: "revision db-7b not yet current"},
		{name: "not available", status: func(s *appsv1.StatefulSetStatus) { s.AvailableReplicas = 0 }, want: "0 of 2 pods available"},
	} {
		st := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 4}, Status: complete}
		st.Spec.Replicas, st.Spec.UpdateStrategy = ptr[int32](2), tc.strategy
		if tc.status != nil {
			tc.status(&st.Status)
		}
		check(t, tc.name, statefulSetProgress(st), tc.want)
	}
}

func TestDaemonSetProgress(t *testing.T) {
	complete := appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3}
	for _, tc := range []struct {
		name     string
		onDelete bool
		status   func(*appsv1.DaemonSetStatus)
		want     string
	}{
		{name: "complete", want: "done"},
		{name: "no nodes", status: func(s *appsv1.DaemonSetStatus) { *s = appsv1.DaemonSetStatus{ObservedGeneration: 1} }, want: "done"},
		{name: "on delete", onDelete: true, want: "skip"},
		{name: "not observed", status: func(s *appsv1.DaemonSetStatus) { s.ObservedGeneration = 0 }, want: "the controller has not seen the restart yet"},
		{name: "updating", status: func(s *appsv1.DaemonSetStatus) { s.UpdatedNumberScheduled = 2 }, want: "2 of 3 pods updated"},
		{name: "not available", status: func(s *appsv1.DaemonSetStatus) { s.NumberAvailable = 1 }, want: "1 of 3 updated pods available"},
	} {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: complete}
		if tc.onDelete {
			d.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
		}
		if tc.status != nil {
			tc.status(&d.Status)
		}
		check(t, tc.name, daemonSetProgress(d), tc.want)
	}
}
