// Package e2e runs rego-injector against a real control plane on 127.0.0.1: etcd, kube-apiserver and
// kube-controller-manager built from the pinned Kubernetes sources (see test/tools), the injector
// binary itself, and the webhook configurations shipped under deploy/.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// env is what the scenarios share: one cluster and one injector for the whole run.
var env *environment

type environment struct {
	cluster  *cluster
	injector *injectorProcess
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv("REGO_INJECTOR_CLUSTER_BIN")
	injectorBin := os.Getenv("REGO_INJECTOR_BIN")
	if bin == "" || injectorBin == "" {
		fmt.Println("e2e: REGO_INJECTOR_CLUSTER_BIN and REGO_INJECTOR_BIN are not set; run `make e2e`, which builds the control plane and the injector first. Skipping.")
		return m.Run() // every test skips without env
	}
	dir, err := os.MkdirTemp("", "rego-injector-e2e-")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	keep := os.Getenv("REGO_INJECTOR_E2E_KEEP") != ""
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	started := time.Now()
	c, err := startCluster(ctx, bin, dir)
	if err != nil {
		fmt.Println("e2e: start the cluster:", err)
		return 1
	}
	defer c.Stop()
	fmt.Printf("e2e: control plane ready in %s (logs in %s)\n", time.Since(started).Round(time.Millisecond), dir)
	inj, err := startInjector(ctx, c, injectorBin, filepath.Join(dir, "injector"))
	if err != nil {
		fmt.Println("e2e: start the injector:", err)
		return 1
	}
	defer inj.stop()
	if err := registerWebhooks(ctx, c, inj); err != nil {
		fmt.Println("e2e: register the webhooks:", err, "\n", inj.proc.Tail(20))
		return 1
	}
	fmt.Printf("e2e: injector serving on %s, webhooks registered, %s after start\n", inj.url, time.Since(started).Round(time.Millisecond))
	env = &environment{cluster: c, injector: inj}
	code := m.Run()
	if code != 0 {
		for _, p := range append(c.Procs, inj.proc) {
			fmt.Printf("--- last lines of %s ---\n%s\n", p.Name, p.Tail(15))
		}
	}
	return code
}

// need skips the test when the environment was not started.
func need(t *testing.T) *environment {
	t.Helper()
	if env == nil {
		t.Skip("no cluster: run `make e2e`")
	}
	return env
}
