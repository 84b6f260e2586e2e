package main

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/test/controlplane"
)

// startControlPlane starts etcd and kube-apiserver from the binaries in bin, writing into dir:
// enough for serve's namespace informer, whose apiserver the fault run pauses.
func startControlPlane(ctx context.Context, bin, dir string) (*controlplane.ControlPlane, error) {
	return controlplane.Start(ctx, bin, dir, controlplane.Options{ClientTimeout: 10 * time.Second})
}

// createNamespace creates a namespace with labels.
func createNamespace(ctx context.Context, cp *controlplane.ControlPlane, name string, labels map[string]string) error {
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	return err
}
