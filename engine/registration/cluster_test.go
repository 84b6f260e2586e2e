package registration

import (
	"errors"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// TestTagLifecycle: set, move, list and remove a tag, with the refusals of each step, on a fake
// clientset (test/e2e/tags_test.go does the same against a real apiserver).
func TestTagLifecycle(t *testing.T) {
	ctx := t.Context()
	prod, canary := namespace("shop", map[string]string{"istio.io/rev": "prod"}), generated(t, Revision, "canary")
	client := fake.NewClientset(&prod, &canary)
	o := TagOptions{Tag: "prod", Revision: "1-31", InjectorNamespace: "mesh", ClientConfig: ServiceClientConfig("rego-injector", "mesh", []byte("CA"))}

	res, err := SetTag(ctx, client, o)
	if err != nil || res.Previous != "" || res.Action != "created" || res.Configuration != "rego-injector-tag-prod" {
		t.Fatalf("set: %+v, %v", res, err)
	}
	cm, err := client.CoreV1().ConfigMaps("mesh").Get(ctx, revisions.TagsConfigMap, metav1.GetOptions{})
	if err != nil || cm.Data["prod"] != "1-31" || cm.Labels[NameLabel] != Name {
		t.Fatalf("ConfigMap %+v, %v", cm, err)
	}
	if res, err := SetTag(ctx, client, o); err != nil || res.Previous != "1-31" || res.Action != "unchanged" {
		t.Errorf("set again: %+v, %v", res, err)
	}
	moved := o
	moved.Revision = "1-32"
	if _, err := SetTag(ctx, client, moved); !errors.Is(err, ErrTagExists) {
		t.Errorf("moving without overwrite: %v, want ErrTagExists", err)
	}
	moved.Overwrite = true
	if res, err := SetTag(ctx, client, moved); err != nil || res.Previous != "1-31" {
		t.Errorf("moving with overwrite: %+v, %v", res, err)
	}
	named := o
	named.Tag = "canary"
	if _, err := SetTag(ctx, client, named); !errors.Is(err, ErrTagIsRevision) {
		t.Errorf("a tag named like a revision: %v, want ErrTagIsRevision", err)
	}
	bad := o
	bad.Revision = "1.31"
	if _, err := SetTag(ctx, client, bad); !errors.Is(err, ErrName) {
		t.Errorf("revision 1.31: %v, want ErrName", err)
	}

	tags, err := ListTags(ctx, client, "mesh")
	if err != nil || len(tags) != 1 || tags[0].Revision != "1-32" || tags[0].Configuration != "rego-injector-tag-prod" || !slices.Equal(tags[0].Namespaces, []string{"shop"}) {
		t.Fatalf("list: %+v, %v", tags, err)
	}

	if inUse, err := RemoveTag(ctx, client, "mesh", "prod", false); !errors.Is(err, ErrTagInUse) || !slices.Equal(inUse, []string{"shop"}) {
		t.Errorf("remove while shop uses it: %v, %v", inUse, err)
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "rego-injector-tag-prod", metav1.GetOptions{}); err != nil {
		t.Fatalf("a refused remove deleted the configuration: %v", err)
	}
	if _, err := RemoveTag(ctx, client, "mesh", "prod", true); err != nil {
		t.Fatal(err)
	}
	if tags, err := ListTags(ctx, client, "mesh"); err != nil || len(tags) != 0 {
		t.Errorf("list after remove: %+v, %v", tags, err)
	}
	if _, err := RemoveTag(ctx, client, "mesh", "prod", true); !errors.Is(err, ErrTagNotFound) {
		t.Errorf("removing it again: %v, want ErrTagNotFound", err)
	}
}

// TestApply: created, unchanged, then updated with the labels of others kept.
func TestApply(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	cfg := generated(t, Revision, "canary")
	for _, want := range []string{"created", "unchanged"} {
		if got, err := Apply(ctx, client, &cfg); err != nil || got != want {
			t.Fatalf("apply: %s, %v, want %s", got, err, want)
		}
	}
	configs := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	stored, _ := configs.Get(ctx, cfg.Name, metav1.GetOptions{})
	stored.Labels["team"] = "mesh"
	stored.Webhooks = stored.Webhooks[:1]
	if _, err := configs.Update(ctx, stored, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := Apply(ctx, client, &cfg); err != nil || got != "updated" {
		t.Fatalf("apply over a changed configuration: %s, %v", got, err)
	}
	stored, _ = configs.Get(ctx, cfg.Name, metav1.GetOptions{})
	if len(stored.Webhooks) != 4 || stored.Labels["team"] != "mesh" || stored.Labels[revisions.RevisionLabel] != "canary" {
		t.Errorf("after apply: %d entries, labels %v", len(stored.Webhooks), stored.Labels)
	}
	names, err := Routing(ctx, client)
	if err != nil || !slices.Equal(names, []string{"rego-injector-rev-canary"}) {
		t.Errorf("routing configurations %v, %v", names, err)
	}
}
