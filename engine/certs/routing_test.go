package certs_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

func mutating(name string, labels map[string]string) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "a.example.com"}, {Name: "b.example.com"}},
	}
}

// TestEnsurePatchesRevisionsAndTags: besides the named configurations, those labelled as a
// revision's or a tag's get the caBundle; other configurations, ours or not, are left alone.
func TestEnsurePatchesRevisionsAndTags(t *testing.T) {
	ours := map[string]string{"app.kubernetes.io/name": "rego-injector"}
	with := func(k, v string) map[string]string {
		l := map[string]string{k: v}
		for k, v := range ours {
			l[k] = v
		}
		return l
	}
	client := fake.NewClientset(
		mutating("rego-injector", ours),
		mutating("rego-injector-tag-prod", with(revisions.TagLabel, "prod")),
		mutating("rego-injector-rev-canary", with(revisions.RevisionLabel, "canary")),
		mutating("rego-injector-copy", ours),
		mutating("istio-revision-tag-prod", map[string]string{revisions.TagLabel: "prod"}),
	)
	o := opts()
	o.WebhookConfigurations = []string{"rego-injector"}
	res, err := certs.Ensure(t.Context(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"MutatingWebhookConfiguration/rego-injector", "MutatingWebhookConfiguration/rego-injector-rev-canary", "MutatingWebhookConfiguration/rego-injector-tag-prod"}
	if !slices.Equal(res.Patched, want) || res.RoutingErr != nil {
		t.Fatalf("patched %v (%v), want %v", res.Patched, res.RoutingErr, want)
	}
	for name, patched := range map[string]bool{"rego-injector": true, "rego-injector-tag-prod": true, "rego-injector-rev-canary": true, "rego-injector-copy": false, "istio-revision-tag-prod": false} {
		c, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.Webhooks {
			if got := bytes.Equal(w.ClientConfig.CABundle, res.CABundle); got != patched {
				t.Errorf("%s/%s: caBundle patched %v, want %v", name, w.Name, got, patched)
			}
		}
	}
	if again, err := certs.Ensure(t.Context(), client, o); err != nil || len(again.Patched) != 0 {
		t.Errorf("second run patched %v (%v)", again.Patched, err)
	}
}

// TestEnsureWithoutListing: an injector whose RBAC does not let it list configurations still
// patches the named ones, and says why it left the others.
func TestEnsureWithoutListing(t *testing.T) {
	client := fake.NewClientset(mutating("rego-injector", nil))
	client.PrependReactor("list", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(admissionregistrationv1.Resource("mutatingwebhookconfigurations"), "", nil)
	})
	o := opts()
	o.WebhookConfigurations = []string{"rego-injector"}
	res, err := certs.Ensure(t.Context(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	if !apierrors.IsForbidden(res.RoutingErr) || !slices.Equal(res.Patched, []string{"MutatingWebhookConfiguration/rego-injector"}) {
		t.Errorf("patched %v, RoutingErr %v", res.Patched, res.RoutingErr)
	}
}

// TestStagedCAWaitsForListing: a staged CA that is due is not switched to while the configurations
// of revisions and tags cannot be listed (they may not trust it yet), and is once they can.
func TestStagedCAWaitsForListing(t *testing.T) {
	client := fake.NewClientset(mutating("rego-injector", nil))
	forbidden := true
	client.PrependReactor("list", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden {
			return true, nil, apierrors.NewForbidden(admissionregistrationv1.Resource("mutatingwebhookconfigurations"), "", nil)
		}
		return false, nil, nil
	})
	o := opts()
	o.WebhookConfigurations = []string{"rego-injector"}
	first, err := certs.Ensure(t.Context(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	staging := o
	staging.RotateCA, staging.CALead = true, time.Hour
	if res, err := certs.Ensure(t.Context(), client, staging); err != nil || !res.StagedCA {
		t.Fatalf("no CA staged: %+v, %v", res, err)
	}
	secret, err := client.CoreV1().Secrets(o.Namespace).Get(t.Context(), o.Secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	elapse(secret)
	if _, err := client.CoreV1().Secrets(o.Namespace).Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	held, err := certs.Ensure(t.Context(), client, o)
	if err != nil || held.NewCA || held.Issued {
		t.Fatalf("switched to the staged CA without knowing every configuration trusts it: %+v, %v", held, err)
	}
	forbidden = false
	switched, err := certs.Ensure(t.Context(), client, o)
	if err != nil || !switched.NewCA || !switched.Issued || bytes.Equal(switched.CertPEM, first.CertPEM) {
		t.Fatalf("the due CA was not switched to once every configuration could be read: %+v, %v", switched, err)
	}
}
