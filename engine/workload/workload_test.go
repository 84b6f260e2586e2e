package workload_test

import (
	"encoding/json"
	"reflect"
	"strings"
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
		"rollout": {`{"metadata":{"labels":{"rollouts-pod-template-hash":"6f9c"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-6f9c","controller":true}]}}`,
			&workload.Owner{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "web"}},
		"rollout hash not in the name": {`{"metadata":{"labels":{"rollouts-pod-template-hash":"6f9c"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7a1b","controller":true}]}}`,
			&workload.Owner{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7a1b"}},
		"deploymentconfig": {`{"metadata":{"annotations":{"openshift.io/deployment-config.name":"web"},"ownerReferences":[{"apiVersion":"v1","kind":"ReplicationController","name":"web-12","controller":true}]}}`,
			&workload.Owner{APIVersion: "apps.openshift.io/v1", Kind: "DeploymentConfig", Name: "web"}},
		"deploymentconfig of another name": {`{"metadata":{"annotations":{"openshift.io/deployment-config.name":"web"},"ownerReferences":[{"apiVersion":"v1","kind":"ReplicationController","name":"web-api-3","controller":true}]}}`,
			&workload.Owner{APIVersion: "v1", Kind: "ReplicationController", Name: "web-api-3"}},
		"deployer pod": {`{"metadata":{"annotations":{"openshift.io/deployment.name":"web-12"},"ownerReferences":[{"apiVersion":"v1","kind":"ReplicationController","name":"web-12","controller":true}]}}`,
			&workload.Owner{APIVersion: "v1", Kind: "ReplicationController", Name: "web-12"}},
		"bare replicationcontroller": {`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ReplicationController","name":"web-1","controller":true}]}}`,
			&workload.Owner{APIVersion: "v1", Kind: "ReplicationController", Name: "web-1"}},
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

// TestPodTemplateKinds: every kind with a pod template is found, at its path, with the workload as
// its owner, and Apply writes the injected pod back there, leaving the rest of the object alone.
func TestPodTemplateKinds(t *testing.T) {
	const podSpec = `{"containers":[{"name":"app","image":"app:1"}]}`
	for name, tc := range map[string]struct {
		obj  string
		path []string // where the template sits; nil for a Pod
		note string   // a substring of the template's note; "" for none
	}{
		"pod": {obj: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns"},"spec":` + podSpec + `}`},
		"deployment": {obj: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"p","namespace":"ns"},
			"spec":{"selector":{"matchLabels":{"app":"p"}},"template":{"metadata":{"labels":{"app":"p"}},"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"deployment extensions/v1beta1": {obj: `{"apiVersion":"extensions/v1beta1","kind":"Deployment","metadata":{"name":"p","namespace":"ns"},
			"spec":{"template":{"spec":` + podSpec + `}}}`, path: []string{"spec", "template"}},
		"statefulset": {obj: `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"p","namespace":"ns"},"spec":{"serviceName":"p","template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"daemonset": {obj: `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"p","namespace":"ns"},"spec":{"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"replicaset": {obj: `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"p","namespace":"ns"},"spec":{"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"replicationcontroller": {obj: `{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"p","namespace":"ns"},"spec":{"selector":{"app":"p"},"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"job": {obj: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"p","namespace":"ns"},"spec":{"backoffLimit":1,"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"cronjob": {obj: `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"p","namespace":"ns"},"spec":{"schedule":"@daily","jobTemplate":{"spec":{"template":{"spec":` + podSpec + `}}}}}`,
			path: []string{"spec", "jobTemplate", "spec", "template"}},
		// A DeploymentConfig's selector is a plain map of labels, not a LabelSelector.
		"deploymentconfig": {obj: `{"apiVersion":"apps.openshift.io/v1","kind":"DeploymentConfig","metadata":{"name":"p","namespace":"ns"},
			"spec":{"replicas":2,"selector":{"app":"p","deploymentconfig":"p"},"triggers":[{"type":"ConfigChange"}],"strategy":{"type":"Rolling"},
			"template":{"metadata":{"labels":{"app":"p","deploymentconfig":"p"}},"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"deploymentconfig before API groups": {obj: `{"apiVersion":"v1","kind":"DeploymentConfig","metadata":{"name":"p","namespace":"ns"},
			"spec":{"selector":{"app":"p"},"template":{"spec":` + podSpec + `}}}`, path: []string{"spec", "template"}},
		"rollout": {obj: `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"p","namespace":"ns"},
			"spec":{"selector":{"matchLabels":{"app":"p"}},"strategy":{"canary":{"steps":[{"setWeight":20},{"pause":{}}]}},
			"template":{"metadata":{"labels":{"app":"p"}},"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
		"custom resource": {obj: `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"p","namespace":"ns"},
			"spec":{"template":{"metadata":{"annotations":{"autoscaling.knative.dev/target":"10"}},"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}, note: "kind Service (apiVersion serving.knative.dev/v1) is not a known workload kind: its spec.template is taken as a pod template"},
		"known kind of another group": {obj: `{"apiVersion":"apps.kruise.io/v1beta1","kind":"StatefulSet","metadata":{"name":"p","namespace":"ns"},"spec":{"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}, note: "kind StatefulSet (apiVersion apps.kruise.io/v1beta1) is not a known workload kind"},
		"no apiVersion": {obj: `{"kind":"Deployment","metadata":{"name":"p","namespace":"ns"},"spec":{"template":{"spec":` + podSpec + `}}}`,
			path: []string{"spec", "template"}},
	} {
		t.Run(name, func(t *testing.T) {
			in := obj(t, tc.obj)
			original := obj(t, tc.obj)
			tmpl, ok := workload.PodTemplate(in)
			if !ok {
				t.Fatal("no pod template found")
			}
			if why := workload.NoTemplate(in); why != "" {
				t.Errorf("NoTemplate says %q of a workload with a template", why)
			}
			if tc.note == "" && tmpl.Note != "" || !strings.Contains(tmpl.Note, tc.note) {
				t.Errorf("note %q, want one with %q", tmpl.Note, tc.note)
			}
			if got := tmpl.Pod["spec"]; !reflect.DeepEqual(got, obj(t, podSpec)) {
				t.Errorf("pod spec %v", got)
			}
			if ns := tmpl.Pod["metadata"].(map[string]any)["namespace"]; ns != "ns" {
				t.Errorf("the pod is not in the workload's namespace: %v", ns)
			}
			apiVersion, _ := in["apiVersion"].(string)
			wantOwner := &workload.Owner{APIVersion: apiVersion, Kind: in["kind"].(string), Name: "p"}
			if tc.path == nil {
				wantOwner = nil
			}
			if !reflect.DeepEqual(tmpl.Owner, wantOwner) {
				t.Errorf("owner %+v, want %+v", tmpl.Owner, wantOwner)
			}

			injected := obj(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"ns","annotations":{"injected":"yes"}},
				"spec":{"containers":[{"name":"app","image":"app:1"},{"name":"istio-proxy"}]}}`)
			out := tmpl.Apply(injected)
			if !reflect.DeepEqual(in, original) {
				t.Error("Apply changed the object it was given")
			}
			at := out
			for _, key := range tc.path {
				at, _ = at[key].(map[string]any)
			}
			if containers, _ := at["spec"].(map[string]any)["containers"].([]any); len(containers) != 2 {
				t.Errorf("the injected spec is not at %v: %v", tc.path, out)
			}
			meta, _ := at["metadata"].(map[string]any)
			if meta["annotations"] == nil {
				t.Errorf("the injected metadata is not at %v: %v", tc.path, out)
			}
			if _, lent := meta["namespace"]; lent && tc.path != nil {
				t.Errorf("the workload's namespace was written into its template: %v", meta)
			}
			// Everything outside the template is the object as it was.
			if tc.path != nil {
				rest := obj(t, mustJSON(t, out))
				templateAt(rest, tc.path[:len(tc.path)-1])[tc.path[len(tc.path)-1]] = templateAt(original, tc.path)
				if !reflect.DeepEqual(rest, original) {
					t.Errorf("Apply changed more than the template:\n%v\nwant\n%v", out, original)
				}
			}
		})
	}
}

func templateAt(o map[string]any, path []string) map[string]any {
	for _, key := range path {
		o, _ = o[key].(map[string]any)
	}
	return o
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestNoTemplate: a workload with no pod template to inject is said so, and why; an object that is
// no workload, or one with a template, is not.
func TestNoTemplate(t *testing.T) {
	for name, tc := range map[string]struct {
		obj  string
		want string // a substring of the reason; "" for none
	}{
		"rollout with workloadRef": {`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"web"},
			"spec":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web-base","scaleDown":"progressively"},"strategy":{"canary":{}}}}`,
			"spec.workloadRef: the Rollout's pods take their template from Deployment/web-base"},
		"rollout without template":           {`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"web"},"spec":{}}`, "no spec.template"},
		"deployment patch":                   {`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}}`, "no spec.template"},
		"cronjob without template":           {`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{}}}`, "no spec.jobTemplate.spec.template"},
		"rollout with template":              {`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"template":{"spec":{"containers":[]}}}}`, ""},
		"pod":                                {`{"apiVersion":"v1","kind":"Pod"}`, ""},
		"service":                            {`{"apiVersion":"v1","kind":"Service","spec":{}}`, ""},
		"rollout of another group":           {`{"apiVersion":"example.com/v1","kind":"Rollout","spec":{"workloadRef":{}}}`, ""},
		"custom resource without containers": {`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"template":{"spec":{"size":3}}}}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			o := obj(t, tc.obj)
			got := workload.NoTemplate(o)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if _, ok := workload.PodTemplate(o); ok && got != "" {
				t.Error("a pod template found where NoTemplate says there is none")
			}
		})
	}
	// An object that only looks like a pod template is taken for one when its kind is unknown,
	// never when it is known with its template elsewhere.
	for _, s := range []string{
		`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"template":{"spec":{"size":3}}}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"template":{"spec":{"containers":"app"}}}}`,
		`{"apiVersion":"batch/v1","kind":"CronJob","spec":{"template":{"spec":{"containers":[]}}}}`,
	} {
		if _, ok := workload.PodTemplate(obj(t, s)); ok {
			t.Errorf("%s: taken for a workload", s)
		}
	}
}
