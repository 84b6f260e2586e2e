package workload_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rego-injector/rego-injector/engine/workload"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOwnerOf(t *testing.T) {
	for name, tc := range map[string]struct {
		pod  string
		want *workload.Owner
	}{
		"bare":           {`{"metadata":{}}`, nil},
		"not controller": {`{"metadata":{"ownerReferences":[{"kind":"Node","name":"n"}]}}`, nil},
		"deployment": {`{"metadata":{"labels":{"pod-template-hash":"abc"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","controller":true}]}}`,
			&workload.Owner{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
		"bare replicaset": {`{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","controller":true}]}}`,
			&workload.Owner{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web"}},
		"job": {`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"m","controller":true}]}}`,
			&workload.Owner{APIVersion: "batch/v1", Kind: "Job", Name: "m"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := workload.OwnerOf(obj(t, tc.pod)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPodTemplateRoundTrip(t *testing.T) {
	cron := obj(t, `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"nightly","namespace":"ops"},
	 "spec":{"schedule":"@daily","jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c"}]}}}}}}`)
	tmpl, ok := workload.PodTemplate(cron)
	if !ok {
		t.Fatal("no template in a CronJob")
	}
	if tmpl.Owner.Kind != "CronJob" || tmpl.Owner.Name != "nightly" {
		t.Errorf("owner %+v", tmpl.Owner)
	}
	if ns := tmpl.Pod["metadata"].(map[string]any)["namespace"]; ns != "ops" {
		t.Errorf("the pod is not in the workload's namespace: %v", ns)
	}
	pod := obj(t, `{"metadata":{"namespace":"ops","annotations":{"a":"b"}},"spec":{"containers":[{"name":"c"},{"name":"proxy"}]}}`)
	out := tmpl.Apply(pod)
	got := out["spec"].(map[string]any)["jobTemplate"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)
	if want := obj(t, `{"metadata":{"annotations":{"a":"b"}},"spec":{"containers":[{"name":"c"},{"name":"proxy"}]}}`); !reflect.DeepEqual(got, want) {
		t.Errorf("template after Apply %v, want %v (no namespace lent into it)", got, want)
	}
	if out["spec"].(map[string]any)["schedule"] != "@daily" {
		t.Error("the rest of the workload was lost")
	}
	if _, ok := workload.PodTemplate(obj(t, `{"kind":"Service"}`)); ok {
		t.Error("a Service has no pod template")
	}
	if _, ok := workload.PodTemplate(obj(t, `{"kind":"Deployment","spec":{}}`)); ok {
		t.Error("a Deployment without a template has none")
	}
}

func TestMetadataOf(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7d9f-","ownerReferences":[{"apiVersion":"v1","kind":"Thing","name":"x","uid":"0"},{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","uid":"u-1","controller":true}]},"spec":{"containers":[]}}`)
	m := workload.MetadataOf(raw)
	if m.GenerateName != "web-7d9f-" || m.Name != "" || m.Controller == nil || m.Controller.Kind != "ReplicaSet" || m.Controller.UID != "u-1" {
		t.Fatalf("metadata %+v, controller %+v", m, m.Controller)
	}
	for _, bad := range []string{``, `[]`, `{"metadata":`, `{"spec":{}}`, `{"metadata":{"name":1}}`} {
		if m := workload.MetadataOf([]byte(bad)); m.Name != "" || m.Controller != nil {
			t.Errorf("%q: %+v", bad, m)
		}
	}
	if m := workload.MetadataOf([]byte(`{"metadata":{"name":"db","ownerReferences":[{"kind":"Job","name":"j","controller":false}]}}`)); m.Name != "db" || m.Controller != nil {
		t.Errorf("a non-controller owner was taken as the controller: %+v", m)
	}
}
