package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/rego-injector/rego-injector/engine/policy"
)

// bundleOf builds an in-memory bundle from a mutate rule body and a sidecar template.
func bundleOf(t testing.TB, mutate string) *bundle.Bundle {
	t.Helper()
	mods := map[string]string{
		"mutate.rego":   "package injector.mutate\n\n" + mutate,
		"validate.rego": "package injector.validate\n\ndeny contains msg if {\n\tinput.object.metadata.name == \"bad\"\n\tmsg := \"bad name\"\n}\n\nwarn contains \"careful\" if input.object.metadata.name == \"risky\"\n",
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "test-1", Roots: &[]string{"injector"}},
		Data:     map[string]any{"injector": map[string]any{"templates": map[string]any{"sidecar": "spec: {}\n", "_shared": ""}}},
	}
	for name, src := range mods {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: name, Path: name, Raw: []byte(src), Parsed: m})
	}
	return b
}

func decide(t *testing.T, mutate string) (policy.Decision, error) {
	t.Helper()
	p, err := policy.Compile(t.Context(), bundleOf(t, mutate))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p.Decide(t.Context(), ast.MustParseTerm(`{"object": {"metadata": {"name": "web"}}}`).Value)
}

func TestDecisionShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		rule    string
		wantErr error
		want    string
		// decision is what a valid rule must parse into, field by field.
		decision policy.Decision
	}{
		"inject": {rule: `decision := {"inject": true, "variant": "sidecar", "values": {"a": 1}, "reasons": ["r"]}`,
			decision: policy.Decision{Inject: true, Variant: "sidecar", Values: map[string]any{"a": json.Number("1")}, Reasons: []string{"r"}}},
		"skip": {rule: `decision := {"inject": false, "code": "opted_out", "reasons": ["r", "s"], "warnings": ["w"]}`,
			decision: policy.Decision{Code: "opted_out", Values: map[string]any{}, Reasons: []string{"r", "s"}, Warnings: []string{"w"}}},
		"undefined":            {rule: `decision := 1 if false`, wantErr: policy.ErrUndefined, want: "is undefined"},
		"not an object":        {rule: `decision := "yes"`, wantErr: policy.ErrMalformed, want: "want an object, got a string"},
		"inject not bool":      {rule: `decision := {"inject": "true", "reasons": ["r"]}`, wantErr: policy.ErrMalformed, want: ".inject"},
		"no reasons":           {rule: `decision := {"inject": false, "reasons": []}`, wantErr: policy.ErrMalformed, want: "at least one reason"},
		"reasons not strings":  {rule: `decision := {"inject": false, "reasons": [1]}`, wantErr: policy.ErrMalformed, want: "reasons[0]"},
		"variant missing":      {rule: `decision := {"inject": true, "reasons": ["r"]}`, wantErr: policy.ErrMalformed, want: "no variant"},
		"variant not a string": {rule: `decision := {"inject": true, "variant": 3, "reasons": ["r"]}`, wantErr: policy.ErrMalformed, want: ".variant"},
		"values not an object": {rule: `decision := {"inject": true, "variant": "sidecar", "values": [], "reasons": ["r"]}`, wantErr: policy.ErrMalformed, want: ".values"},
		"deny": {rule: `decision := {"inject": false, "code": "override_refused", "reasons": ["r"], "deny": ["no"], "refused_overrides": [{"annotation": "a", "value": "v", "reason": "not yours"}]}`,
			decision: policy.Decision{Code: "override_refused", Values: map[string]any{}, Reasons: []string{"r"}, Deny: []string{"no"},
				RefusedOverrides: []policy.RefusedOverride{{Annotation: "a", Value: "v", Reason: "not yours"}}}},
		"honoured": {rule: `decision := {"inject": true, "variant": "v", "reasons": ["r"], "honoured_overrides": [{"annotation": "a", "value": "1", "reserved": true}, {"annotation": "b", "value": "2"}]}`,
			decision: policy.Decision{Inject: true, Variant: "v", Values: map[string]any{}, Reasons: []string{"r"},
				HonouredOverrides: []policy.HonouredOverride{{Annotation: "a", Value: "1", Reserved: true}, {Annotation: "b", Value: "2"}}}},
		"inject and deny":       {rule: `decision := {"inject": true, "variant": "sidecar", "reasons": ["r"], "deny": ["no"]}`, wantErr: policy.ErrMalformed, want: "both inject and deny"},
		"deny not strings":      {rule: `decision := {"inject": false, "reasons": ["r"], "deny": [{}]}`, wantErr: policy.ErrMalformed, want: ".deny[0]"},
		"refusal not a list":    {rule: `decision := {"inject": false, "reasons": ["r"], "refused_overrides": {}}`, wantErr: policy.ErrMalformed, want: "want a list of objects"},
		"refusal not object":    {rule: `decision := {"inject": false, "reasons": ["r"], "refused_overrides": ["a"]}`, wantErr: policy.ErrMalformed, want: "refused_overrides[0]"},
		"refusal no reason":     {rule: `decision := {"inject": false, "reasons": ["r"], "refused_overrides": [{"annotation": "a", "value": "v"}]}`, wantErr: policy.ErrMalformed, want: "refused_overrides[0].reason"},
		"honoured not reserved": {rule: `decision := {"inject": false, "reasons": ["r"], "honoured_overrides": [{"annotation": "a", "value": "v", "reserved": "yes"}]}`, wantErr: policy.ErrMalformed, want: "honoured_overrides[0].reserved"},
		"conflict":              {rule: "decision := {\"inject\": false, \"reasons\": [\"a\"]} if input.object\n\ndecision := {\"inject\": false, \"reasons\": [\"b\"]} if input.object.metadata", want: "conflict"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := decide(t, tc.rule)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v is not %v", err, tc.wantErr)
			case err == nil && !reflect.DeepEqual(d, tc.decision):
				t.Fatalf("decision\n%#v\nwant\n%#v", d, tc.decision)
			}
		})
	}
}

func TestCompileRefusesBrokenBundles(t *testing.T) {
	b := bundleOf(t, `decision := {"inject": false, "reasons": ["r"]}`)
	b.Data["injector"] = map[string]any{}
	if _, err := policy.Compile(t.Context(), b); !errors.Is(err, policy.ErrUndefined) {
		t.Errorf("bundle without templates: %v", err)
	}
	b = bundleOf(t, `decision := {"inject": false, "reasons": ["r"]}`)
	b.Data["injector"].(map[string]any)["templates"] = map[string]any{"sidecar": 3}
	if _, err := policy.Compile(t.Context(), b); !errors.Is(err, policy.ErrMalformed) {
		t.Errorf("template that is not text: %v", err)
	}
	if _, err := policy.Compile(t.Context()); !errors.Is(err, policy.ErrNoBundle) {
		t.Errorf("no bundle: %v", err)
	}
}

func TestValidateAndVariants(t *testing.T) {
	p, err := policy.Compile(t.Context(), bundleOf(t, `decision := {"inject": false, "reasons": ["r"]}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Validate(t.Context(), ast.MustParseTerm(`{"object": {"metadata": {"name": "bad"}}}`).Value)
	if err != nil || len(v.Deny) != 1 || v.Deny[0] != "bad name" || len(v.Warn) != 0 {
		t.Errorf("verdict %+v, %v", v, err)
	}
	if got := fmt.Sprint(p.Variants()); got != "[sidecar]" {
		t.Errorf("variants %s: partials are not variants", got)
	}
	if p.Revision() != "test-1" {
		t.Errorf("revision %q", p.Revision())
	}
}

func TestVerdictShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		rules string
		want  string // error text; "" wants a verdict
	}{
		"modes":                   {"deny := {\"a\"}\n\nwarn := {\"b\"}\n\ndryrun := {\"c\"}\n\nviolations := {{\"rule\": \"r\", \"mode\": \"dryrun\", \"message\": \"c\"}}\n", ""},
		"dryrun not strings":      {"dryrun := [1]\n", "dryrun[0]"},
		"violation without mode":  {"violations := [{\"rule\": \"r\", \"message\": \"m\"}]\n", "violations[0].mode"},
		"violations not a list":   {"violations := \"r\"\n", "want a list of objects"},
		"unknown mode":            {"violations := [{\"rule\": \"r\", \"mode\": \"audit\", \"message\": \"m\"}]\n", `"audit" is not one of deny, warn, dryrun`},
		"violation not an object": {"violations := [\"r\"]\n", "violations[0]: decision is malformed"},
	} {
		t.Run(name, func(t *testing.T) {
			b := bundleOf(t, `decision := {"inject": false, "reasons": ["r"]}`)
			for i, m := range b.Modules {
				if m.Path == "validate.rego" {
					src := "package injector.validate\n\n" + tc.rules
					b.Modules[i].Raw, b.Modules[i].Parsed = []byte(src), ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})
				}
			}
			p, err := policy.Compile(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.Validate(t.Context(), ast.MustParseTerm(`{}`).Value)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, policy.ErrMalformed) {
					t.Fatalf("error %v, want a malformed verdict naming %q", err, tc.want)
				}
				return
			}
			if err != nil || fmt.Sprint(v.Deny, v.Warn, v.DryRun) != "[a] [b] [c]" || len(v.Violations) != 1 || v.Violations[0].Mode != "dryrun" {
				t.Fatalf("verdict %+v, %v", v, err)
			}
		})
	}
}

// Example shows the two phases: compile a bundle once, then decide per request.
func Example() {
	src := `package injector.mutate

decision := {"inject": true, "variant": "sidecar", "reasons": [sprintf("namespace %s is enabled", [input.namespace.name])]} if {
	input.namespace.labels["istio-injection"] == "enabled"
} else := {"inject": false, "reasons": ["namespace is not enabled"]}
`
	validate := "package injector.validate\n\ndeny := set()\n\nwarn := set()\n"
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "example-1", Roots: &[]string{"injector"}},
		Data:     map[string]any{"injector": map[string]any{"templates": map[string]any{"sidecar": "spec: {}\n"}}},
	}
	for name, text := range map[string]string{"mutate.rego": src, "validate.rego": validate} {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: name, Path: name, Raw: []byte(text), Parsed: ast.MustParseModuleWithOpts(text, ast.ParserOptions{RegoVersion: ast.RegoV1})})
	}
	ctx := context.Background()
	p, err := policy.Compile(ctx, b)
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := p.Decide(ctx, ast.MustParseTerm(`{"namespace": {"name": "team-a", "labels": {"istio-injection": "enabled"}}}`).Value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Inject, d.Variant, d.Reasons, p.Revision())
	// Output: true sidecar [namespace team-a is enabled] example-1
}

func TestPure(t *testing.T) {
	for rule, want := range map[string]bool{
		`decision := {"inject": false, "reasons": [input.request.operation]}`:                                                                                  true,
		`decision := {"inject": false, "reasons": [input.object.metadata.uid]}`:                                                                                true,
		`decision := {"inject": false, "reasons": [input.request.uid]}`:                                                                                        false,
		`decision := {"inject": false, "reasons": [json.marshal(input.request)]}`:                                                                              false,
		`decision := {"inject": false, "reasons": [json.marshal(input)]}`:                                                                                      false,
		"decision := {\"inject\": false, \"reasons\": [k]} if some k, _ in input.request":                                                                      false,
		`decision := {"inject": false, "reasons": [sprintf("%d", [time.now_ns()])]}`:                                                                           false,
		`decision := {"inject": false, "reasons": [sprintf("%d", [rand.intn("x", 9)])]}`:                                                                       false,
		"decision := {\"inject\": false, \"reasons\": [\"r\"]} if { k := \"uid\"; input.request[k] }":                                                          false,
		"decision := {\"inject\": false, \"reasons\": [\"r\"]} if { [ok, _, _] := io.jwt.decode_verify(input.object.metadata.name, {\"secret\": \"s\"}); ok }": false,
	} {
		p, err := policy.Compile(t.Context(), bundleOf(t, rule))
		if err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
		if p.Pure() != want {
			t.Errorf("%s: Pure() = %v, want %v", rule, p.Pure(), want)
		}
	}
}

// TestTestModulesNotServed: a bundle from a bundle server may carry its `_test.rego` files; they are
// not compiled, so they neither fail the bundle nor make its policy impure.
func TestTestModulesNotServed(t *testing.T) {
	b := bundleOf(t, `decision := {"inject": false, "reasons": ["r"]}`)
	src := "package injector.mutate_test\n\ntest_clock if time.now_ns() > 0\n\ntest_broken if no_such_function(1)\n"
	m, err := ast.ParseModuleWithOpts("mutate_test.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	b.Modules = append(b.Modules, bundle.ModuleFile{URL: "mutate_test.rego", Path: "mutate_test.rego", Raw: []byte(src), Parsed: m})
	p, err := policy.Compile(t.Context(), b)
	if err != nil {
		t.Fatalf("a bundle with a test module was refused: %v", err)
	}
	if !p.Pure() {
		t.Error("a test module made the policy impure")
	}
	if len(b.Modules) != 3 {
		t.Errorf("Compile changed the caller's bundle: %d modules", len(b.Modules))
	}
}
