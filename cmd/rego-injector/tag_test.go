package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/registration"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

// TestTagGenerate: the ConfigMap entry and the tag's configuration, as YAML that reads back into
// the API types, with the caBundle of the file given.
func TestTagGenerate(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := tagCmd(t.Context(), []string{"generate", "prod", "--revision", "1-31", "--injector-namespace", "mesh", "--service", "injector", "--ca-bundle-file", ca}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	docs := strings.Split(out.String(), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d YAML documents, want 2:\n%s", len(docs), out.String())
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != revisions.TagsConfigMap || cm.Namespace != "mesh" || cm.Data["prod"] != "1-31" || len(cm.Data) != 1 {
		t.Errorf("ConfigMap %+v", cm)
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != "MutatingWebhookConfiguration" || cfg.Name != "rego-injector-tag-prod" || cfg.Labels[revisions.TagLabel] != "prod" || len(cfg.Webhooks) != 4 {
		t.Fatalf("configuration %s %v, %d entries", cfg.Name, cfg.Labels, len(cfg.Webhooks))
	}
	for _, w := range cfg.Webhooks {
		s := w.ClientConfig.Service
		if s == nil || s.Name != "injector" || s.Namespace != "mesh" || string(w.ClientConfig.CABundle) != "-----BEGIN CERTIFICATE-----\n" {
			t.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
		}
	}
	// What it generates is disjoint from the shipped configuration.
	r := registration.Check(registration.State{Configurations: []admissionregistrationv1.MutatingWebhookConfiguration{cfg}})
	if len(r.Entries) != 4 || len(r.Overlaps) != 0 {
		t.Errorf("entries %d, overlaps %v", len(r.Entries), r.Overlaps)
	}
}

func TestTagUsageErrors(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, args := range [][]string{
		{},
		{"rename", "a"},
		{"set", "--revision", "canary"},
		{"set", "prod"},
		{"set", "Prod", "--revision", "canary"},
		{"set", "prod", "--revision", "1.31"},
		{"set", "prod", "--revision", "canary", "extra"},
		{"list"},
		{"list", "-o", "yaml"},
		{"remove", "prod"},
		{"generate", "prod"},
	} {
		var out, errOut bytes.Buffer
		if err := tagCmd(t.Context(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("tag %v: %v, want a usage error", args, err)
		}
	}
	var out, errOut bytes.Buffer
	if err := precheckCmd(t.Context(), nil, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("precheck without a cluster: %v, want a usage error", err)
	}
	if err := certsCmd(t.Context(), []string{"--revisions", "canary", "--secret-file", "-"}, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("certs --revisions --secret-file: %v, want a usage error", err)
	}
	if err := certsCmd(t.Context(), []string{"--revisions", "Canary"}, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("certs --revisions Canary: %v, want a usage error", err)
	}
}
