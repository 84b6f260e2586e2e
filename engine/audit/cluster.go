package audit

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// pageSize bounds the pods one list call returns.
const pageSize = 500

// RunCluster judges the pods of namespace ("" for all) a page of the list at a time, so that only
// one page is held in memory, leaving out pods that have finished (their containers will not run
// again). See Run for its errors.
func RunCluster(ctx context.Context, inj Decider, client kubernetes.Interface, namespace string) (Report, error) {
	var a Auditor
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		list, err := client.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return Report{}, fmt.Errorf("list pods: %w", err)
		}
		running := slices.DeleteFunc(list.Items, func(p corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		})
		if err := a.Judge(ctx, inj, running); err != nil {
			return Report{}, err
		}
		if list.Continue == "" {
			return a.Report(inj), nil
		}
		opts.Continue = list.Continue
	}
}
