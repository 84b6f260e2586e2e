package certs_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rego-injector/rego-injector/engine/certs"
)

func opts() certs.Options {
	return certs.Options{Service: "rego-injector", Namespace: "ns", Secret: "tls", Validity: 24 * time.Hour, RenewBefore: time.Hour}
}

func TestBuildReusesRenewsAndReplaces(t *testing.T) {
	first, issued, err := certs.Build(opts(), nil)
	if err != nil || !issued {
		t.Fatalf("first build: issued %v, %v", issued, err)
	}
	block, _ := pem.Decode(first.Data[certs.KeyCert])
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(first.Data[certs.KeyCACert])
	for _, host := range certs.ServiceHosts("rego-injector", "ns") {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}

	again, issued, err := certs.Build(opts(), first)
	if err != nil || issued || !bytes.Equal(again.Data[certs.KeyCert], first.Data[certs.KeyCert]) {
		t.Fatalf("a good certificate was not kept: issued %v, %v", issued, err)
	}

	o := opts()
	o.Renew = true
	renewed, issued, err := certs.Build(o, first)
	if err != nil || !issued || bytes.Equal(renewed.Data[certs.KeyCert], first.Data[certs.KeyCert]) || !bytes.Equal(renewed.Data[certs.KeyCACert], first.Data[certs.KeyCACert]) {
		t.Fatalf("--renew must issue a new certificate under the same CA: %v", err)
	}

	o = opts()
	o.ExtraHosts = []string{"127.0.0.1"}
	if _, issued, _ := certs.Build(o, first); !issued {
		t.Error("a certificate that does not cover a new host was kept")
	}

	broken := first.DeepCopy()
	broken.Data[certs.KeyCAKey] = []byte("not a key")
	broken.Data[certs.KeyCert] = nil
	replaced, issued, err := certs.Build(opts(), broken)
	if err != nil || !issued || bytes.Equal(replaced.Data[certs.KeyCACert], first.Data[certs.KeyCACert]) || replaced.Type != corev1.SecretTypeTLS {
		t.Fatalf("an unreadable CA with nothing to serve must be replaced at once: %v", err)
	}
}

func TestIssueNeverOutlivesTheCA(t *testing.T) {
	ca, err := certs.NewAuthority("short", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue([]string{"a.example"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(s.CertPEM)
	leaf, _ := x509.ParseCertificate(block.Bytes)
	if leaf.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("certificate expires %v, after its CA %v", leaf.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.Issue(nil, time.Hour); err == nil {
		t.Error("a certificate for no host")
	}
}
