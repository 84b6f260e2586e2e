package manifest_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/manifest"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// TestExplainNamesTheRevision: the header says which revision, tag and bundle revision decided,
// and "no revision" when the pod's labels named none served; the default revision alone reads as
// before revisions existed.
func TestExplainNamesTheRevision(t *testing.T) {
	for _, c := range []struct {
		wl   manifest.Workload
		want string
	}{
		{manifest.Workload{Revision: "b-1"}, "[revision b-1]"},
		{manifest.Workload{Revision: "b-1", Rev: "default"}, "[revision b-1]"},
		{manifest.Workload{Revision: "b-1", Rev: "default", Tag: "default"}, "[revision default through tag default, bundle revision b-1]"},
		{manifest.Workload{Revision: "b-2", Rev: "1-32"}, "[revision 1-32, bundle revision b-2]"},
		{manifest.Workload{Revision: "b-2", Rev: "1-32", Tag: "prod"}, "[revision 1-32 through tag prod, bundle revision b-2]"},
		{manifest.Workload{Tag: "prod", Decision: policy.Decision{Code: "unknown_revision"}}, "[no revision]"},
	} {
		c.wl.Kind, c.wl.Name, c.wl.Namespace, c.wl.Document = "Pod", "web", "shop", 1
		var out bytes.Buffer
		if err := manifest.WriteText(&out, []manifest.Workload{c.wl}); err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasSuffix(first, c.want) {
			t.Errorf("%+v: %q, want it to end with %q", c.wl, first, c.want)
		}
	}
}
