package certs

import (
	"crypto/x509"
	"encoding/pem"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A change of CA never leaves a served certificate untrusted. It goes in two steps, each a run of
// Ensure (or Build):
//
//  1. Stage: a next CA is made and published in the caBundle beside the current one, while the
//     current CA keeps signing. It is due CALead later.
//  2. Switch: once due, the next CA signs a new serving certificate, and the replaced CA stays in the
//     caBundle as previous until every certificate it signed has expired: Validity after the
//     switch, or its own expiry if sooner.
//
// So the apiserver trusts the new CA before any replica serves a certificate it signed, and keeps
// trusting the old CA while replicas that have not reloaded the Secret still serve one.
//
// A CA is staged when fewer than two Validity periods of it remain, when Options.RotateCA asks, or
// when its key is unusable. The switch skips the wait only when nothing else can be served: the
// current CA cannot sign (no usable key, or too close to its expiry) and the serving certificate is
// not good any more.

// Keys of the TLS Secret during a change of CA, beside those of the current CA.
const (
	// KeyNextCACert and KeyNextCAKey hold the staged CA: in the caBundle, not signing yet.
	KeyNextCACert = "ca-next.crt"
	KeyNextCAKey  = "ca-next.key"
	// KeyPreviousCACerts holds the certificates of replaced CAs still trusted, PEM-concatenated.
	KeyPreviousCACerts = "ca-previous.crt"
)

// Annotations of the TLS Secret during a change of CA, times in RFC 3339.
const (
	// AnnotationNextCAFrom is when the staged CA may start signing.
	AnnotationNextCAFrom = "rego-injector.io/ca-next-signs-from"
	// AnnotationPreviousCAUntil is when the previous CAs leave the caBundle.
	AnnotationPreviousCAUntil = "rego-injector.io/ca-previous-until"
)

// DefaultCALead is the default of Options.CALead: ample for every apiserver to load a new caBundle,
// which takes them well under a second.
const DefaultCALead = 5 * time.Minute

// secretKeys are the data keys Build owns in the Secret; others are left alone.
var secretKeys = []string{KeyCert, KeyKey, KeyCACert, KeyCAKey, KeyNextCACert, KeyNextCAKey, KeyPreviousCACerts}

// secretAnnotations are the annotations Build owns in the Secret.
var secretAnnotations = []string{AnnotationNextCAFrom, AnnotationPreviousCAUntil}

// Bundle is the caBundle for a Secret made by Build: the previous CAs, the current one and the
// staged one, oldest first, each once, expired ones left out, PEM-concatenated. The order keeps the
// caBundle the same bytes when a staged CA becomes current. With no change of CA under way it is
// the current CA's certificate alone.
func Bundle(secret *corev1.Secret) []byte {
	now := time.Now()
	var previous []*x509.Certificate
	if until, err := time.Parse(time.RFC3339, secret.Annotations[AnnotationPreviousCAUntil]); err != nil || now.Before(until) {
		previous = parseCerts(secret.Data[KeyPreviousCACerts])
	}
	return encodeCerts(now, previous, parseCerts(secret.Data[KeyCACert]), parseCerts(secret.Data[KeyNextCACert]))
}

// authorities are the CAs of a Secret: the current one (whose key may be unusable), the staged one
// and the previous ones.
type authorities struct {
	current    *x509.Certificate
	currentKey *Authority // nil: the current CA cannot sign
	// kept holds the current CA's data keys as the Secret had them, while it stays current.
	kept      map[string][]byte
	next      *Authority
	nextFrom  time.Time
	previous  []*x509.Certificate
	prevUntil time.Time
	switched  bool // the next CA became current in this run
}

// readAuthorities reads the CAs of existing (nil for none).
func readAuthorities(existing *corev1.Secret) *authorities {
	a := &authorities{}
	if existing == nil {
		return a
	}
	if certs := parseCerts(existing.Data[KeyCACert]); len(certs) > 0 {
		a.current = certs[0]
		a.kept = map[string][]byte{KeyCACert: existing.Data[KeyCACert], KeyCAKey: existing.Data[KeyCAKey]}
	}
	if ca, err := LoadAuthority(existing.Data[KeyCACert], existing.Data[KeyCAKey]); err == nil {
		a.currentKey = ca
	}
	if next, err := LoadAuthority(existing.Data[KeyNextCACert], existing.Data[KeyNextCAKey]); err == nil {
		a.next = next
		a.nextFrom, _ = time.Parse(time.RFC3339, existing.Annotations[AnnotationNextCAFrom]) // unreadable: due now
	}
	a.previous = parseCerts(existing.Data[KeyPreviousCACerts])
	a.prevUntil, _ = time.Parse(time.RFC3339, existing.Annotations[AnnotationPreviousCAUntil])
	return a
}

// plan moves the change of CA on by one step at now: it stages a next CA when one is wanted and
// switches to it when due (and allowed, or when nothing else can serve). servingGood says whether
// the serving certificate in hand is still good under the current CA.
func (a *authorities) plan(opts Options, now time.Time, servingGood, mayPromote bool, name string) error {
	if a.current == nil { // nothing trusted that we know of: a CA now, the staged one if any
		if a.next == nil {
			ca, err := NewAuthority(name, 10*opts.Validity)
			if err != nil {
				return err
			}
			a.next = ca
		}
		a.promote(opts, now)
		return nil
	}
	canSign := a.currentKey != nil && a.current.NotAfter.Sub(now) > opts.RenewBefore
	if a.next == nil && (opts.RotateCA || !canSign || a.current.NotAfter.Sub(now) < 2*opts.Validity) {
		ca, err := NewAuthority(name, 10*opts.Validity)
		if err != nil {
			return err
		}
		lead := opts.CALead
		if lead <= 0 {
			lead = DefaultCALead
		}
		a.next, a.nextFrom = ca, ceilSecond(now.Add(lead))
	}
	if a.next != nil && ((mayPromote && !now.Before(a.nextFrom)) || (!canSign && !servingGood)) {
		a.promote(opts, now)
	}
	return nil
}

// promote makes the next CA current, keeping the replaced one trusted for Validity.
func (a *authorities) promote(opts Options, now time.Time) {
	if a.current != nil {
		a.previous = append(a.previous, a.current)
		if until := ceilSecond(now.Add(opts.Validity)); until.After(a.prevUntil) {
			a.prevUntil = until
		}
	}
	a.current, a.currentKey, a.kept = a.next.Cert, a.next, nil
	a.next, a.nextFrom, a.switched = nil, time.Time{}, true
}

// write stores the CAs and their annotations into secret.
func (a *authorities) write(secret *corev1.Secret, now time.Time) {
	if a.kept != nil {
		secret.Data[KeyCACert], secret.Data[KeyCAKey] = a.kept[KeyCACert], a.kept[KeyCAKey]
	} else {
		secret.Data[KeyCACert], secret.Data[KeyCAKey] = a.currentKey.CertPEM, a.currentKey.KeyPEM
	}
	if a.next != nil {
		secret.Data[KeyNextCACert], secret.Data[KeyNextCAKey] = a.next.CertPEM, a.next.KeyPEM
		setAnnotation(secret, AnnotationNextCAFrom, a.nextFrom.UTC().Format(time.RFC3339))
	}
	if a.prevUntil.IsZero() || now.Before(a.prevUntil) { // no date (added by hand): until they expire
		// Previous CAs other than the current and the staged one, each once, unexpired.
		var keep []*x509.Certificate
		for _, c := range a.previous {
			if !c.Equal(a.current) && (a.next == nil || !c.Equal(a.next.Cert)) {
				keep = append(keep, c)
			}
		}
		if prev := encodeCerts(now, keep); len(prev) > 0 {
			secret.Data[KeyPreviousCACerts] = prev
			if !a.prevUntil.IsZero() {
				setAnnotation(secret, AnnotationPreviousCAUntil, a.prevUntil.UTC().Format(time.RFC3339))
			}
		}
	}
}

// ceilSecond rounds t up to a whole second, as the annotations keep it (RFC 3339).
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

func setAnnotation(secret *corev1.Secret, key, value string) {
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[key] = value
}

// parseCerts reads every certificate of a PEM bundle, skipping what does not parse.
func parseCerts(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// encodeCerts PEM-encodes the certificates of the groups in order, each once, leaving out those
// expired at now.
func encodeCerts(now time.Time, groups ...[]*x509.Certificate) []byte {
	var out []byte
	var seen []*x509.Certificate
	for _, g := range groups {
		for _, c := range g {
			if now.After(c.NotAfter) || slices.ContainsFunc(seen, c.Equal) {
				continue
			}
			seen = append(seen, c)
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	return out
}
