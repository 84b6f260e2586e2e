package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// loadPolicy reads the bundles named by srcs, or the embedded default bundle when there are none,
// and compiles them.
func loadPolicy(ctx context.Context, srcs []string) (*policy.Policy, error) {
	var bundles []*bundle.Bundle
	if len(srcs) == 0 {
		b, err := regoinjector.DefaultBundle()
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	for _, src := range srcs {
		b, err := policy.ReadSource(ctx, src)
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	return policy.Compile(ctx, bundles...)
}

// kubeClient builds a client from kubeconfig, or from the pod's service account when kubeconfig is
// empty and the process runs in a cluster. It returns nil, nil when neither is available.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = "rego-injector/" + version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// offlineNamespaces is the namespace source of the offline commands: the cluster when kubeconfig is
// given, else the labels given on the command line.
func offlineNamespaces(ctx context.Context, kubeconfig, labels string, log *slog.Logger) (cluster.Namespaces, error) {
	if kubeconfig != "" {
		cs, err := kubeClient(kubeconfig)
		if err != nil {
			return nil, err
		}
		live := cluster.NewLive(ctx, cs, log)
		wait, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for !live.Synced() {
			select {
			case <-wait.Done():
				return nil, fmt.Errorf("namespaces from %s: cache did not sync: %w", kubeconfig, wait.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		return live, nil
	}
	l, err := cluster.ParseLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("%w: --namespace-labels: %w", errUsage, err)
	}
	return cluster.Static{Labels: l}, nil
}
