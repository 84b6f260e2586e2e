package certs

import (
	"bytes"
	"context"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Keys of the TLS Secret. tls.crt and tls.key are what the Deployment mounts; ca.crt and ca.key keep
// the authority, so that the next run renews the serving certificate under the same CA and the
// apiserver's caBundle stays valid.
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
	// webhook gets the CA as caBundle. A configuration that does not exist is skipped.
	WebhookConfigurations []string
	// Validity of a new serving certificate; the CA lives ten times as long.
	Validity time.Duration
	// RenewBefore renews a serving certificate that expires within this margin.
	RenewBefore time.Duration
	// Renew forces a new serving certificate (the CA is kept).
	Renew bool
}

// Result tells what Ensure did.
type Result struct {
	// CAPEM is the authority's certificate: the caBundle.
	CAPEM []byte
	// Issued is true when a new serving certificate was written.
	Issued bool
	// NewCA is true when a new authority was made: there was none, it was unreadable, or it was
	// about to expire.
	NewCA bool
	// Patched lists the webhook configurations whose caBundle changed, as kind/name.
	Patched []string
	// CertPEM and KeyPEM are the serving certificate and key now in the Secret.
	CertPEM, KeyPEM []byte
}

// Build returns the Secret for the options, reusing the authority and serving certificate in
// existing (nil for none) when they are still good; issued reports a new serving certificate.
func Build(opts Options, existing *corev1.Secret) (secret *corev1.Secret, ca *Authority, issued bool, err error) {
	hosts := append(ServiceHosts(opts.Service, opts.Namespace), opts.ExtraHosts...)
	if existing != nil {
		ca, err = LoadAuthority(existing.Data[KeyCACert], existing.Data[KeyCAKey])
		if err != nil || time.Until(ca.Cert.NotAfter) < opts.Validity {
			ca = nil // unreadable, or it could not sign a full-length certificate: a new authority
		}
	}
	if ca == nil {
		if ca, err = NewAuthority(opts.Service+"."+opts.Namespace+" webhook CA", 10*opts.Validity); err != nil {
			return nil, nil, false, err
		}
		existing = nil // nothing of the old secret can be kept
	}
	secret = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Secret, Namespace: opts.Namespace, Labels: map[string]string{"app.kubernetes.io/name": opts.Service}},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{KeyCACert: ca.CertPEM, KeyCAKey: ca.KeyPEM},
	}
	if existing != nil && !opts.Renew && ca.Usable(existing.Data[KeyCert], hosts, opts.RenewBefore) && len(existing.Data[KeyKey]) > 0 {
		secret.Data[KeyCert], secret.Data[KeyKey] = existing.Data[KeyCert], existing.Data[KeyKey]
		return secret, ca, false, nil
	}
	serving, err := ca.Issue(hosts, opts.Validity)
	if err != nil {
		return nil, nil, false, err
	}
	secret.Data[KeyCert], secret.Data[KeyKey] = serving.CertPEM, serving.KeyPEM
	return secret, ca, true, nil
}

// Ensure makes or renews the Secret in the cluster and patches the CA into the caBundle of every
// webhook of the named configurations. Run again, it changes nothing until renewal is due. Several
// replicas may run it at once: the Secret is the single truth, written with optimistic concurrency,
// so the loser of a race re-reads the winner's certificate and keeps it.
func Ensure(ctx context.Context, client kubernetes.Interface, opts Options) (Result, error) {
	var res Result
	secrets := client.CoreV1().Secrets(opts.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := secrets.Get(ctx, opts.Secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			existing, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("read secret %s/%s: %w", opts.Namespace, opts.Secret, err)
		}
		secret, ca, issued, err := Build(opts, existing)
		if err != nil {
			return err
		}
		res.CAPEM, res.Issued = ca.CertPEM, issued
		res.NewCA = existing == nil || !bytes.Equal(existing.Data[KeyCACert], ca.CertPEM)
		res.CertPEM, res.KeyPEM = secret.Data[KeyCert], secret.Data[KeyKey]
		switch {
		case existing == nil:
			_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Another replica made it first: read theirs and go on from there.
				return apierrors.NewConflict(corev1.Resource("secrets"), opts.Secret, err)
			}
		case issued || !bytes.Equal(existing.Data[KeyCACert], ca.CertPEM):
			existing.Data, existing.Type = secret.Data, secret.Type
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
		patched, err := patchCABundles(ctx, client, name, res.CAPEM)
		if err != nil {
			return res, err
		}
		res.Patched = append(res.Patched, patched...)
	}
	return res, nil
}

// patchCABundles sets caBundle on every webhook of the configurations called name.
func patchCABundles(ctx context.Context, client kubernetes.Interface, name string, ca []byte) ([]string, error) {
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
	validating := client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	changed, err = setCABundle(ctx, name, ca, validating.Get, validating.Update, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
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
