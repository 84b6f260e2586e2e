package certs

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/rego-injector/rego-injector/engine/registration"
)

// Keys of the TLS Secret. tls.crt and tls.key are what the Deployment mounts; ca.crt and ca.key keep
// the authority, so that the next run renews the serving certificate under the same CA and the
// apiserver's caBundle stays valid. A change of CA adds the keys of rotation.go.
const (
	KeyCert   = corev1.TLSCertKey
	KeyKey    = corev1.TLSPrivateKeyKey
	KeyCACert = "ca.crt"
	KeyCAKey  = "ca.key"
)

// Options says what to make and where to install it.
type Options struct {
	// Service and Namespace name the webhook's Service; the certificate covers its DNS names.
	Service, Namespace string
	// ExtraHosts are further names or IP addresses the serving certificate covers.
	ExtraHosts []string
	// Secret names the TLS Secret, in Namespace.
	Secret string
	// WebhookConfigurations names the Mutating- and ValidatingWebhookConfigurations whose every
	// webhook gets the CA as caBundle. A configuration that does not exist is skipped. The
	// configurations of revisions and tags (registration.Routing) get it too, without being named.
	WebhookConfigurations []string
	// Validity of a new serving certificate; the CA lives ten times as long.
	Validity time.Duration
	// RenewBefore renews a serving certificate that expires within this margin.
	RenewBefore time.Duration
	// Renew forces a new serving certificate (the CA is kept).
	Renew bool
	// RotateCA stages a new CA now, even though the current one is good (see rotation.go).
	RotateCA bool
	// CALead is how long a staged CA is in the caBundle before it signs; zero means DefaultCALead.
	CALead time.Duration
}

// Result tells what Ensure did.
type Result struct {
	// CABundle is what every webhook gets as caBundle: see Bundle.
	CABundle []byte
	// Issued is true when a new serving certificate was written.
	Issued bool
	// NewCA is true when another CA signs the serving certificate than before: there was none, or
	// a change of CA switched.
	NewCA bool
	// NextCAFrom, when not zero, is when the staged CA in the caBundle starts signing; StagedCA is
	// true when this run staged it.
	NextCAFrom time.Time
	StagedCA   bool
	// PreviousCAUntil, when not zero, is when the replaced CAs leave the caBundle.
	PreviousCAUntil time.Time
	// Patched lists the webhook configurations whose caBundle changed, as kind/name.
	Patched []string
	// RoutingErr, when not nil, says why the configurations of revisions and tags, or some of them,
	// were left alone: the injector's RBAC may not let it list or update them. The named
	// configurations are patched all the same, but a staged CA is not switched to while the
	// others cannot be listed, until the current CA can no longer sign.
	RoutingErr error
	// CertPEM and KeyPEM are the serving certificate and key now in the Secret.
	CertPEM, KeyPEM []byte
}

// Build returns the Secret for the options, reusing the CAs and serving certificate in existing
// (nil for none) when they are still good, and moving a change of CA on by one step (rotation.go);
// issued reports a new serving certificate. Its caBundle is Bundle(secret).
func Build(opts Options, existing *corev1.Secret) (secret *corev1.Secret, issued bool, err error) {
	return build(opts, existing, time.Now(), true)
}

// build is Build at now; a staged CA that is due switches only when mayPromote.
func build(opts Options, existing *corev1.Secret, now time.Time, mayPromote bool) (secret *corev1.Secret, issued bool, err error) {
	hosts := append(ServiceHosts(opts.Service, opts.Namespace), opts.ExtraHosts...)
	cas := readAuthorities(existing)
	servingGood := cas.current != nil && !opts.Renew && len(existing.Data[KeyKey]) > 0 &&
		usable(cas.current, existing.Data[KeyCert], hosts, now.Add(opts.RenewBefore))
	if err := cas.plan(opts, now, servingGood, mayPromote, opts.Service+"."+opts.Namespace+" webhook CA"); err != nil {
		return nil, false, err
	}
	secret = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Secret, Namespace: opts.Namespace, Labels: map[string]string{"app.kubernetes.io/name": opts.Service}},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{},
	}
	cas.write(secret, now)
	if servingGood && !cas.switched {
		secret.Data[KeyCert], secret.Data[KeyKey] = existing.Data[KeyCert], existing.Data[KeyKey]
		return secret, false, nil
	}
	serving, err := cas.currentKey.Issue(hosts, opts.Validity)
	if err != nil {
		return nil, false, err
	}
	secret.Data[KeyCert], secret.Data[KeyKey] = serving.CertPEM, serving.KeyPEM
	return secret, true, nil
}

// Ensure makes or renews the Secret in the cluster and patches its caBundle into every webhook of
// the named configurations. Run again, it changes nothing until renewal or a step of a change of CA
// is due; a staged CA switches only once every webhook's caBundle holds it. Several replicas may run
// it at once: the Secret is the single truth, written with optimistic concurrency, so the loser of a
// race re-reads the winner's certificate and keeps it.
func Ensure(ctx context.Context, client kubernetes.Interface, opts Options) (Result, error) {
	var res Result
	routing, err := registration.Routing(ctx, client)
	if apierrors.IsForbidden(err) {
		routing, res.RoutingErr, err = nil, err, nil
	}
	if err != nil {
		return res, err
	}
	secrets := client.CoreV1().Secrets(opts.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := secrets.Get(ctx, opts.Secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			existing, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("read secret %s/%s: %w", opts.Namespace, opts.Secret, err)
		}
		// Configurations it may not list may not hold the staged CA yet: it switches only when the
		// current one can no longer sign (rotation.go's plan).
		mayPromote := res.RoutingErr == nil
		if mayPromote && existing != nil && len(existing.Data[KeyNextCACert]) > 0 {
			if mayPromote, err = bundlesHold(ctx, client, opts.WebhookConfigurations, routing, existing.Data[KeyNextCACert]); err != nil {
				return err
			}
		}
		secret, issued, err := build(opts, existing, time.Now(), mayPromote)
		if err != nil {
			return err
		}
		res = Result{CABundle: Bundle(secret), Issued: issued, CertPEM: secret.Data[KeyCert], KeyPEM: secret.Data[KeyKey], RoutingErr: res.RoutingErr}
		res.NewCA = existing == nil || !bytes.Equal(existing.Data[KeyCACert], secret.Data[KeyCACert])
		res.StagedCA = len(secret.Data[KeyNextCACert]) > 0 && (existing == nil || !bytes.Equal(existing.Data[KeyNextCACert], secret.Data[KeyNextCACert]))
		res.NextCAFrom, _ = time.Parse(time.RFC3339, secret.Annotations[AnnotationNextCAFrom])
		res.PreviousCAUntil, _ = time.Parse(time.RFC3339, secret.Annotations[AnnotationPreviousCAUntil])
		switch {
		case existing == nil:
			_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Another replica made it first: read theirs and go on from there.
				return apierrors.NewConflict(corev1.Resource("secrets"), opts.Secret, err)
			}
		case merge(existing, secret):
			_, err = secrets.Update(ctx, existing, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("write secret %s/%s: %w", opts.Namespace, opts.Secret, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, name := range opts.WebhookConfigurations {
		patched, err := patchCABundles(ctx, client, name, res.CABundle)
		if err != nil {
			return res, err
		}
		res.Patched = append(res.Patched, patched...)
	}
	for _, name := range routing {
		if slices.Contains(opts.WebhookConfigurations, name) {
			continue
		}
		patched, err := patchMutatingCABundle(ctx, client, name, res.CABundle)
		if apierrors.IsForbidden(err) {
			res.RoutingErr = err
			continue
		}
		if err != nil {
			return res, err
		}
		res.Patched = append(res.Patched, patched...)
	}
	return res, nil
}

// merge copies into existing the data keys and annotations Build owns, as secret has them, leaving
// the others alone; it reports whether anything changed.
func merge(existing, secret *corev1.Secret) bool {
	changed := existing.Type != secret.Type
	existing.Type = secret.Type
	if existing.Data == nil {
		existing.Data = map[string][]byte{}
	}
	for _, k := range secretKeys {
		v, ok := secret.Data[k]
		if old, had := existing.Data[k]; had != ok || !bytes.Equal(old, v) {
			changed = true
		}
		if ok {
			existing.Data[k] = v
		} else {
			delete(existing.Data, k)
		}
	}
	for _, k := range secretAnnotations {
		v, ok := secret.Annotations[k]
		if old, had := existing.Annotations[k]; had != ok || old != v {
			changed = true
		}
		if ok {
			if existing.Annotations == nil {
				existing.Annotations = map[string]string{}
			}
			existing.Annotations[k] = v
		} else {
			delete(existing.Annotations, k)
		}
	}
	return changed
}

// bundlesHold reports whether the caBundle of every webhook of the named configurations, and of
// the MutatingWebhookConfigurations named in routing, holds the CA certificate in caPEM.
// Configurations that do not exist are skipped, as when patching.
func bundlesHold(ctx context.Context, client kubernetes.Interface, names, routing []string, caPEM []byte) (bool, error) {
	want := parseCerts(caPEM)
	if len(want) == 0 {
		return true, nil
	}
	holds := func(bundle []byte) bool { return slices.ContainsFunc(parseCerts(bundle), want[0].Equal) }
	for _, name := range routing {
		m, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", name, err)
		}
		for _, w := range m.Webhooks {
			if !holds(w.ClientConfig.CABundle) {
				return false, nil
			}
		}
	}
	for _, name := range names {
		m, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", name, err)
		}
		if err == nil {
			for _, w := range m.Webhooks {
				if !holds(w.ClientConfig.CABundle) {
					return false, nil
				}
			}
		}
		v, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", name, err)
		}
		if err == nil {
			for _, w := range v.Webhooks {
				if !holds(w.ClientConfig.CABundle) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

// patchCABundles sets caBundle on every webhook of the configurations called name.
func patchCABundles(ctx context.Context, client kubernetes.Interface, name string, ca []byte) ([]string, error) {
	patched, err := patchMutatingCABundle(ctx, client, name, ca)
	if err != nil {
		return nil, err
	}
	validating := client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	changed, err := setCABundle(ctx, name, ca, validating.Get, validating.Update, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
		out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
		for i := range c.Webhooks {
			out[i] = &c.Webhooks[i].ClientConfig
		}
		return out
	})
	if err != nil {
		return nil, fmt.Errorf("patch caBundle of ValidatingWebhookConfiguration %s: %w", name, err)
	}
	if changed {
		patched = append(patched, "ValidatingWebhookConfiguration/"+name)
	}
	return patched, nil
}

// patchMutatingCABundle sets caBundle on every webhook of the MutatingWebhookConfiguration name.
func patchMutatingCABundle(ctx context.Context, client kubernetes.Interface, name string, ca []byte) ([]string, error) {
	var patched []string
	mutating := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	changed, err := setCABundle(ctx, name, ca, mutating.Get, mutating.Update, func(c *admissionregistrationv1.MutatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
		out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
		for i := range c.Webhooks {
			out[i] = &c.Webhooks[i].ClientConfig
		}
		return out
	})
	if err != nil {
		return nil, fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", name, err)
	}
	if changed {
		patched = append(patched, "MutatingWebhookConfiguration/"+name)
	}
	return patched, nil
}

// setCABundle reads the configuration, sets ca on each of its client configs and writes it back when
// anything changed, retrying on conflict. A configuration that does not exist is left alone.
func setCABundle[T any](ctx context.Context, name string, ca []byte,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	clientConfigs func(T) []*admissionregistrationv1.WebhookClientConfig,
) (bool, error) {
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cfg, err := get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		changed = false
		for _, cc := range clientConfigs(cfg) {
			if !bytes.Equal(cc.CABundle, ca) {
				cc.CABundle, changed = ca, true
			}
		}
		if !changed {
			return nil
		}
		_, err = update(ctx, cfg, metav1.UpdateOptions{})
		return err
	})
	return changed, err
}
