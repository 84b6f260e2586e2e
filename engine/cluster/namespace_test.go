package cluster_test

import (
	"reflect"
	"testing"

	"github.com/rego-injector/rego-injector/engine/cluster"
)

func TestParseLabels(t *testing.T) {
	got, err := cluster.ParseLabels(" istio-injection=enabled, team=a=b ,,")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"istio-injection": "enabled", "team": "a=b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"novalue", "=x"} {
		if _, err := cluster.ParseLabels(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStaticCopiesLabels(t *testing.T) {
	labels := map[string]string{"a": "1"}
	ns, err := cluster.Static{Labels: labels}.Namespace(t.Context(), "x")
	if err != nil || ns.Name != "x" || ns.Labels["a"] != "1" || ns.Annotations == nil {
		t.Fatalf("%+v %v", ns, err)
	}
	ns.Labels["a"] = "changed"
	if labels["a"] != "1" {
		t.Error("a namespace shares its labels with the source")
	}
}
