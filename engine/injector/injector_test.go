package injector_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	regoinjector "github.com/rego-injector/rego-injector"
	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// plainPod is a plain Deployment pod that the default bundle injects in an enabled namespace.
const plainPod = "testdata/pod.yaml"

// TestReinjectionMatchesFreshInjection: a pod injected at an older revision, re-injected, is the pod
// a fresh injection at the new revision gives.
func TestReinjectionMatchesFreshInjection(t *testing.T) {
	raw := fixture.YAMLToJSON(t, plainPod)
	labels := map[string]string{"istio-injection": "enabled"}
	old := fixture.Injector(t, fixture.Policy(t, "old-1"), labels)
	first, err := old.Inject(t.Context(), fixture.Admission(raw, "default", ""))
	if err != nil || first.Pod == nil {
		t.Fatalf("inject at old-1: %v", err)
	}
	current := fixture.Injector(t, fixture.Policy(t, ""), labels)
	fresh, err := current.Inject(t.Context(), fixture.Admission(raw, "default", ""))
	if err != nil {
		t.Fatal(err)
	}
	re, err := current.Inject(t.Context(), fixture.Admission(fixture.JSON(t, first.Pod), "default", ""))
	if err != nil {
		t.Fatal(err)
	}
	if re.Pod == nil {
		t.Fatal("re-injection left the pod at the old revision")
	}
	// The status annotations differ only in their reasons, which tell of the re-injection.
	reStatus, freshStatus := takeStatus(t, re.Pod), takeStatus(t, fresh.Pod)
	reStatus.Reasons, freshStatus.Reasons = nil, nil
	if !reflect.DeepEqual(reStatus, freshStatus) {
		t.Errorf("status after re-injection %+v, fresh %+v", reStatus, freshStatus)
	}
	if !reflect.DeepEqual(re.Pod, fresh.Pod) {
		t.Errorf("re-injected pod differs from a fresh injection:\nre    %s\nfresh %s", fixture.JSON(t, re.Pod), fixture.JSON(t, fresh.Pod))
	}
}

// takeStatus removes the status annotation from pod and returns it.
func takeStatus(t testing.TB, pod map[string]any) inject.Status {
	t.Helper()
	st, ok, err := inject.ReadStatus(pod)
	if err != nil || !ok {
		t.Fatalf("status annotation: present %v, %v", ok, err)
	}
	delete(pod["metadata"].(map[string]any)["annotations"].(map[string]any), inject.StatusAnnotation)
	return st
}

func TestInactiveInjectorFails(t *testing.T) {
	inj := injector.New(cluster.Static{})
	if _, err := inj.Inject(t.Context(), fixture.Admission([]byte(`{}`), "default", "")); err != injector.ErrNotActive {
		t.Fatalf("got %v, want ErrNotActive", err)
	}
}

// TestBrokenBundleKeepsActiveRevision: a revision whose templates do not parse is refused and the
// active one keeps serving.
func TestBrokenBundleKeepsActiveRevision(t *testing.T) {
	inj := fixture.Injector(t, fixture.Policy(t, ""), nil)
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = "broken"
	setTemplate(b, "sidecar", "{{ if }")
	broken, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Activate(broken); err == nil {
		t.Fatal("a bundle with a template that does not parse was activated")
	}
	if got := inj.Revision(); got != "default-1" {
		t.Fatalf("revision %q after a refused activation, want default-1", got)
	}
}

// TestBrokenTemplatesRefusedAtActivation: a revision whose template fails on a plain pod never
// serves; the self-test refuses it and the active revision stays.
func TestBrokenTemplatesRefusedAtActivation(t *testing.T) {
	for name, text := range map[string]string{
		"missing value":  "spec:\n  containers:\n  - name: x\n    image: {{ .Values.nope }}\n",
		"panic":          "{{ div 1 0 }}",
		"not a pod":      "spec:\n  containers: 3\n",
		"forbidden part": "spec:\n  hostNetwork: true\n",
		"typo":           "spec:\n  containers:\n  - name: x\n    imagee: y\n",
		"bad values":     "spec:\n  containers:\n  - name: x\n    image: y\n    resources: {requests: {cpu: lots}}\n",
	} {
		// sidecar is what a plain pod gets; native and proxy-only what a pod that asks gets; custom
		// no pod gets (policy does not know it), so it is rendered with a plain pod's values.
		for _, variant := range []string{"sidecar", "native", "proxy-only", "custom"} {
			t.Run(name+"/"+variant, func(t *testing.T) {
				inj := fixture.Injector(t, fixture.Policy(t, ""), nil)
				b, err := regoinjector.DefaultBundle()
				if err != nil {
					t.Fatal(err)
				}
				b.Manifest.Revision = "broken"
				setTemplate(b, variant, text)
				p, err := policy.Compile(t.Context(), b)
				if err != nil {
					t.Fatal(err)
				}
				if err := inj.Activate(p); err == nil || !strings.Contains(err.Error(), "self-test") || !strings.Contains(err.Error(), variant) && variant != "sidecar" {
					t.Fatalf("activated, or refused for another reason: %v", err)
				}
				if inj.Revision() != "default-1" {
					t.Fatalf("revision %q after a refused activation", inj.Revision())
				}
			})
		}
	}
}

// TestSelfTestSaysWhatItCannotRender: a bundle whose policy injects no self-test pod is activated,
// and each variant is logged as not self-tested, with why.
func TestSelfTestSaysWhatItCannotRender(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Data["injector"].(map[string]any)["config"].(map[string]any)["policy"] = "disabled"
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	fixture.Injector(t, p, nil, injector.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for _, variant := range p.Variants() {
		if !strings.Contains(logs.String(), fmt.Sprintf(`variant \"%s\": policy injects neither`, variant)) {
			t.Errorf("no warning that variant %s was not self-tested:\n%s", variant, logs.String())
		}
	}
}

// TestTemplateErrorsFailClosed: a template that fails on one pod leaves that pod untouched and says
// why.
func TestTemplateErrorsFailClosed(t *testing.T) {
	for name, text := range map[string]string{
		"missing value": "spec:\n  containers:\n  - name: x\n    image: {{ if eq .Pod.Name \"web\" }}{{ .Values.nope }}{{ else }}y{{ end }}\n",
		"panic":         "spec:\n  containers:\n  - name: x\n    image: y{{ if eq .Pod.Name \"web\" }}{{ div 1 0 }}{{ end }}\n",
	} {
		t.Run(name, func(t *testing.T) {
			b, err := regoinjector.DefaultBundle()
			if err != nil {
				t.Fatal(err)
			}
			setTemplate(b, "sidecar", text)
			p, err := policy.Compile(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			inj := fixture.Injector(t, p, map[string]string{"istio-injection": "enabled"})
			raw := fixture.YAMLToJSON(t, plainPod)
			res, err := inj.Inject(t.Context(), fixture.Admission(raw, "default", ""))
			if err == nil {
				t.Fatalf("no error; patch %s", res.Patch)
			}
			if res.Patch != nil || res.Pod != nil {
				t.Fatalf("an error came with a patch: %s", res.Patch)
			}
		})
	}
}

func setTemplate(b *bundle.Bundle, variant, text string) {
	templates := b.Data["injector"].(map[string]any)["templates"].(map[string]any)
	templates[variant] = text
}

// TestOfflineUser: the command line judges manifests as the user it is told to (--as), so that a
// variant policy reserves to that user is what `check` and `inject` see too.
func TestOfflineUser(t *testing.T) {
	b, err := regoinjector.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	b.Data["injector"].(map[string]any)["config"].(map[string]any)["privileged_variants"] = map[string]any{"proxy-only": map[string]any{"users": []any{"system:serviceaccount:ci:deployer"}}}
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(fixture.YAMLToJSON(t, plainPod), &obj); err != nil {
		t.Fatal(err)
	}
	obj["metadata"].(map[string]any)["annotations"] = map[string]any{"rego-injector.io/variant": "proxy-only"}
	labels := map[string]string{"istio-injection": "enabled"}
	for user, want := range map[string]string{"": "sidecar", "system:serviceaccount:ci:deployer": "proxy-only"} {
		inj := fixture.Injector(t, p, labels, injector.WithOfflineUser(user, nil))
		_, res, ok, err := inj.InjectObject(t.Context(), obj, "default")
		if err != nil || !ok || res.Decision.Variant != want {
			t.Errorf("as %q: variant %q (%v), want %q", user, res.Decision.Variant, err, want)
		}
	}
}
