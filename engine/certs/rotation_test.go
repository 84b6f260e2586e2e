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

// verifies reports whether the serving certificate in certPEM verifies for the Service against the
// CA certificates of bundle, as the apiserver checks it.
func verifies(t *testing.T, certPEM, bundle []byte) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatalf("the caBundle holds no certificate:\n%s", bundle)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no serving certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "rego-injector.ns.svc"})
	return err
}

// countCerts is the number of certificates in a PEM bundle.
func countCerts(bundle []byte) int {
	n := 0
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		n++
	}
	return n
}

// elapse makes the Secret's pending change of CA due, as if its lead time had passed.
func elapse(secret *corev1.Secret) {
	if _, ok := secret.Annotations[certs.AnnotationNextCAFrom]; ok {
		secret.Annotations[certs.AnnotationNextCAFrom] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	}
}

// secretWith is a Secret signed by ca, with a serving certificate of ca for the Service.
func secretWith(t *testing.T, ca *certs.Authority) *corev1.Secret {
	t.Helper()
	serving, err := ca.Issue(certs.ServiceHosts("rego-injector", "ns"), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{Data: map[string][]byte{
		certs.KeyCACert: ca.CertPEM, certs.KeyCAKey: ca.KeyPEM,
		certs.KeyCert: serving.CertPEM, certs.KeyKey: serving.KeyPEM,
	}}
}

// TestCAChangeOverlaps: a CA near its end is replaced step by step, run after run, and at every step
// the published caBundle trusts every certificate served so far (replicas that have not reloaded the
// Secret yet still serve the old one), and the certificate served after a step verifies against the
// caBundle published before it (the apiserver may not have seen the new caBundle yet).
func TestCAChangeOverlaps(t *testing.T) {
	o := opts()
	old, err := certs.NewAuthority("old", 20*time.Hour) // less than o.Validity left: due for a change
	if err != nil {
		t.Fatal(err)
	}
	secret := secretWith(t, old)
	published := secret.Data[certs.KeyCACert]
	served := [][]byte{secret.Data[certs.KeyCert]}
	for step := range 4 {
		next, _, err := certs.Build(o, secret)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		bundle := certs.Bundle(next)
		if err := verifies(t, next.Data[certs.KeyCert], published); err != nil {
			t.Errorf("step %d: the certificate served now is not trusted by the caBundle published before: %v", step, err)
		}
		served = append(served, next.Data[certs.KeyCert])
		for i, s := range served {
			if err := verifies(t, s, bundle); err != nil {
				t.Errorf("step %d: certificate %d served so far is not trusted by the caBundle now: %v", step, i, err)
			}
		}
		secret, published = next, bundle
		elapse(secret)
	}
	if bytes.Equal(secret.Data[certs.KeyCACert], old.CertPEM) {
		t.Fatal("the CA was never replaced")
	}
	if n := countCerts(published); n != 2 {
		t.Errorf("the caBundle holds %d certificates after the change, want the new CA and the old one", n)
	}
}

func TestCAChangeWaitsForItsLead(t *testing.T) {
	o := opts()
	o.RotateCA, o.CALead = true, time.Hour
	first, _, err := certs.Build(opts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certs.Bundle(first), first.Data[certs.KeyCACert]) {
		t.Error("with one CA the caBundle is not the CA alone")
	}
	staged, issued, err := certs.Build(o, first)
	if err != nil || issued {
		t.Fatalf("staging a new CA must keep the serving certificate: issued %v, %v", issued, err)
	}
	if !bytes.Equal(staged.Data[certs.KeyCACert], first.Data[certs.KeyCACert]) || len(staged.Data[certs.KeyNextCACert]) == 0 {
		t.Fatal("--rotate-ca did not stage a next CA beside the current one")
	}
	if n := countCerts(certs.Bundle(staged)); n != 2 {
		t.Errorf("a staged CA: %d certificates in the caBundle, want 2", n)
	}
	// Within the lead, runs keep the stage as it is, --rotate-ca or not.
	for _, o := range []certs.Options{opts(), o} {
		again, issued, err := certs.Build(o, staged)
		if err != nil || issued || !bytes.Equal(again.Data[certs.KeyNextCACert], staged.Data[certs.KeyNextCACert]) ||
			!bytes.Equal(again.Data[certs.KeyCACert], staged.Data[certs.KeyCACert]) {
			t.Fatalf("a run within the lead changed the CAs: issued %v, %v", issued, err)
		}
	}
	elapse(staged)
	promoted, issued, err := certs.Build(opts(), staged)
	if err != nil || !issued || !bytes.Equal(promoted.Data[certs.KeyCACert], staged.Data[certs.KeyNextCACert]) || len(promoted.Data[certs.KeyNextCACert]) != 0 {
		t.Fatalf("once due, the staged CA must sign a new serving certificate: issued %v, %v", issued, err)
	}
	if !bytes.Contains(promoted.Data[certs.KeyPreviousCACerts], first.Data[certs.KeyCACert]) {
		t.Error("the replaced CA is not kept as previous")
	}
	if !bytes.Equal(certs.Bundle(promoted), certs.Bundle(staged)) {
		t.Error("the caBundle changed when the staged CA became current")
	}
	until, err := time.Parse(time.RFC3339, promoted.Annotations[certs.AnnotationPreviousCAUntil])
	if err != nil || until.Before(time.Now().Add(opts().Validity-time.Minute)) || until.After(time.Now().Add(opts().Validity+time.Minute)) {
		t.Errorf("the previous CA is trusted until %v (%v), want about --validity from now", until, err)
	}
}

func TestBundleDropsExpiredAndRetiredCAs(t *testing.T) {
	current, err := certs.NewAuthority("current", 240*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	previous, _ := certs.NewAuthority("previous", 24*time.Hour)
	expired, _ := certs.NewAuthority("expired", -time.Minute)
	secret := secretWith(t, current)
	secret.Data[certs.KeyPreviousCACerts] = bytes.Join([][]byte{previous.CertPEM, expired.CertPEM, current.CertPEM, previous.CertPEM}, nil)
	secret.Annotations = map[string]string{certs.AnnotationPreviousCAUntil: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if got, want := certs.Bundle(secret), append(append([]byte(nil), previous.CertPEM...), current.CertPEM...); !bytes.Equal(got, want) {
		t.Errorf("caBundle: want the previous CA then the current one, each once, without the expired one; got %d certificates", countCerts(got))
	}
	kept, issued, err := certs.Build(opts(), secret)
	if err != nil || issued || !bytes.Equal(kept.Data[certs.KeyPreviousCACerts], previous.CertPEM) {
		t.Errorf("a run keeps the previous CA, once: issued %v, %v, %d certificates", issued, err, countCerts(kept.Data[certs.KeyPreviousCACerts]))
	}
	kept.Annotations[certs.AnnotationPreviousCAUntil] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	retired, _, err := certs.Build(opts(), kept)
	if err != nil || len(retired.Data[certs.KeyPreviousCACerts]) != 0 || retired.Annotations[certs.AnnotationPreviousCAUntil] != "" {
		t.Errorf("past its date the previous CA must go: %v", err)
	}
	if !bytes.Equal(certs.Bundle(retired), current.CertPEM) {
		t.Error("after the previous CA went, the caBundle is not the CA alone")
	}
}

// TestUnreadableCAKey: a CA whose key cannot be read (an RSA CA made by hand, say) is changed in the
// same two steps while its serving certificate is still good; with nothing good to serve, at once.
// Either way its certificate stays in the caBundle, since replicas still serve what it signed.
func TestUnreadableCAKey(t *testing.T) {
	old, err := certs.NewAuthority("old", 240*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := secretWith(t, old)
	secret.Data[certs.KeyCAKey] = []byte("not a key")
	staged, issued, err := certs.Build(opts(), secret)
	if err != nil || issued || !bytes.Equal(staged.Data[certs.KeyCACert], old.CertPEM) || len(staged.Data[certs.KeyNextCACert]) == 0 {
		t.Fatalf("a good serving certificate under a CA without a usable key: stage a new CA and keep serving (issued %v, %v)", issued, err)
	}
	elapse(staged)
	switched, issued, err := certs.Build(opts(), staged)
	if err != nil || !issued || !bytes.Equal(switched.Data[certs.KeyCACert], staged.Data[certs.KeyNextCACert]) {
		t.Fatalf("once due, the staged CA signs: issued %v, %v", issued, err)
	}
	if err := verifies(t, secret.Data[certs.KeyCert], certs.Bundle(switched)); err != nil {
		t.Errorf("the certificate replicas still serve is not trusted: %v", err)
	}

	o := opts()
	o.Renew = true // nothing good to serve: a new CA signs at once
	replaced, issued, err := certs.Build(o, secret)
	if err != nil || !issued || bytes.Equal(replaced.Data[certs.KeyCACert], old.CertPEM) || len(replaced.Data[certs.KeyNextCACert]) != 0 {
		t.Fatalf("with nothing to serve, a new CA must sign at once: issued %v, %v", issued, err)
	}
	if err := verifies(t, secret.Data[certs.KeyCert], certs.Bundle(replaced)); err != nil {
		t.Errorf("the certificate replicas still serve is not trusted: %v", err)
	}
}
