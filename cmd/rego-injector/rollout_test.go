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
		{"--revision", "default-2", "--max-unavailable", "0"},
		{"--revision", "default-2", "--timeout", "0s"},
		{"--revision", "default-2", "extra"},
		{"--revision", "default-2"}, // no cluster
	} {
		var out, errOut bytes.Buffer
		if err := rolloutCmd(t.Context(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("rollout %v: %v, want a usage error", args, err)
		}
	}
}

func TestSelectFindings(t *testing.T) {
	var r audit.Report
	for _, s := range audit.States {
		r.Findings = append(r.Findings, audit.Finding{Pod: string(s), State: s})
	}
	var got []string
	for _, f := range selectFindings(r, "default-2") {
		got = append(got, f.Pod)
	}
	if want := []string{"missing", "outdated", "variant"}; !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}
}
