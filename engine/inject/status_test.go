package inject_test

import (
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/inject"
)

// TestReadStatus: the engine reads a status annotation as the default policy does: a JSON object
// with a string revision whose other fields, where present and not null, have the types the engine
// writes, keys matched exactly. Anything else is an error that names what is wrong.
func TestReadStatus(t *testing.T) {
	for _, tc := range []struct {
		value   any
		wantErr string // "" wants a status
		check   func(inject.Status) bool
	}{
		{value: `{"revision":"r1","variant":"sidecar","containers":["istio-proxy"],"replaced":{"containers":{"istio-proxy":{"name":"istio-proxy","image":"mine"}}},"reasons":["why"]}`,
			check: func(st inject.Status) bool {
				return st.Revision == "r1" && st.Variant == "sidecar" && len(st.Containers) == 1 && st.Replaced["containers"]["istio-proxy"] != nil && len(st.Reasons) == 1
			}},
		{value: `{"revision":"r1","variant":null,"containers":null,"replaced":{"containers":null},"future":{"any":"thing"}}`,
			check: func(st inject.Status) bool { return st.Revision == "r1" && st.Containers == nil }},
		// Keys match exactly, as they do in policy: "Containers" is some other field.
		{value: `{"revision":"r1","Containers":"istio-proxy","REPLACED":1}`,
			check: func(st inject.Status) bool { return st.Revision == "r1" && st.Containers == nil && st.Replaced == nil }},
		{value: 3, wantErr: "annotation rego-injector.io/status is not a string"},
		{value: `{not json`, wantErr: "annotation rego-injector.io/status: invalid character"},
		{value: `null`, wantErr: "want a JSON object, got null"},
		{value: `[]`, wantErr: "want a JSON object, got a list"},
		{value: `"istio-proxy"`, wantErr: "want a JSON object, got a string"},
		{value: `{}`, wantErr: "revision: missing"},
		{value: `{"revision":1}`, wantErr: "revision: want a string, got a number"},
		{value: `{"revision":"r1","variant":3}`, wantErr: "variant: want a string, got a number"},
		{value: `{"revision":"r1","containers":"istio-proxy"}`, wantErr: "containers: want a list of strings, got a string"},
		{value: `{"revision":"r1","containers":[1,2]}`, wantErr: "containers[0]: want a string, got a number"},
		{value: `{"revision":"r1","initContainers":{"istio-init":true}}`, wantErr: "initContainers: want a list of strings, got an object"},
		{value: `{"revision":"r1","imagePullSecrets":[null]}`, wantErr: "imagePullSecrets[0]: want a string, got null"},
		{value: `{"revision":"r1","labels":["a",{}]}`, wantErr: "labels[1]: want a string, got an object"},
		{value: `{"revision":"r1","reasons":[true]}`, wantErr: "reasons[0]: want a string, got a boolean"},
		{value: `{"revision":"r1","replaced":"x"}`, wantErr: "replaced: want an object, got a string"},
		{value: `{"revision":"r1","replaced":{"containers":"x"}}`, wantErr: `replaced.containers: want an object, got a string`},
		{value: `{"revision":"r1","replaced":{"containers":{"istio-proxy":1}}}`, wantErr: `replaced.containers["istio-proxy"]: want an object, got a number`},
	} {
		pod := map[string]any{"metadata": map[string]any{"annotations": map[string]any{inject.StatusAnnotation: tc.value}}}
		st, ok, err := inject.ReadStatus(pod)
		switch {
		case !ok:
			t.Errorf("%v: the annotation was not found", tc.value)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: unexpected error: %v", tc.value, err)
		case tc.wantErr == "" && !tc.check(st):
			t.Errorf("%v: read as %+v", tc.value, st)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want one containing %q", tc.value, err, tc.wantErr)
		case tc.wantErr != "" && !strings.HasPrefix(err.Error(), "annotation "+inject.StatusAnnotation):
			t.Errorf("%v: error %q does not name the annotation", tc.value, err)
		}
	}
	if _, ok, err := inject.ReadStatus(map[string]any{"metadata": map[string]any{}}); ok || err != nil {
		t.Errorf("a pod without the annotation: ok %v, err %v", ok, err)
	}
}

// TestStripRefusesUnreadableStatus: a status that cannot be read leaves the pod untouched.
func TestStripRefusesUnreadableStatus(t *testing.T) {
	p := obj(t, `{"metadata":{"annotations":{"rego-injector.io/status":"{\"revision\":\"r1\",\"containers\":[\"proxy\"],\"replaced\":{\"containers\":{\"proxy\":1}}}"}},"spec":{"containers":[{"name":"app"},{"name":"proxy"}]}}`)
	stripped, err := inject.Strip(p)
	if err == nil || stripped {
		t.Fatalf("stripped %v, err %v: want an error", stripped, err)
	}
	if got := len(p["spec"].(map[string]any)["containers"].([]any)); got != 2 {
		t.Errorf("the pod lost containers: %d left", got)
	}
}
