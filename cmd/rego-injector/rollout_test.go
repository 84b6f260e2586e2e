package main

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/rego-injector/rego-injector/engine/audit"
)

func TestRolloutUsage(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, args := range [][]string{
		{},
		{"--revision", "default", "--max-unavailable", "0"},
		{"--revision", "default", "--timeout", "0s"},
		{"--revision", "default", "extra"},
		{"--revision", "default"}, // no cluster
	} {
		var out, errOut bytes.Buffer
		if err := rolloutCmd(t.Context(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("rollout %v: %v, want a usage error", args, err)
		}
	}
}

func TestSelectFindings(t *testing.T) {
	var r audit.Report
	for _, rev := range []string{"1-31", "1-32"} {
		for _, s := range audit.States {
			r.Findings = append(r.Findings, audit.Finding{Pod: rev + "/" + string(s), State: s, Want: audit.Injection{Rev: rev}})
		}
	}
	var got []string
	for _, f := range selectFindings(r, "1-32") {
		got = append(got, f.Pod)
	}
	if want := []string{"1-32/missing", "1-32/outdated", "1-32/variant"}; !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}
}
