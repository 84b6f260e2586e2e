package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The queries a bundle must answer. They are the whole contract between the engine and policy authors;
// docs/policy-authors.md describes their input and output.
const (
	MutateQuery    = "data.injector.mutate.decision"
	ValidateQuery  = "data.injector.validate"
	TemplatesQuery = "data.injector.templates"
)

// ErrUndefined is returned when a bundle leaves a decision undefined.
var ErrUndefined = errors.New("decision is undefined")

// ErrMalformed is returned when a decision does not have the documented shape.
var ErrMalformed = errors.New("decision is malformed")

// Policy is one compiled revision of the bundles: its prepared queries and the templates it ships.
// A Policy is immutable and safe for concurrent use.
type Policy struct {
	revision  string
	mutate    rego.PreparedEvalQuery
	validate  rego.PreparedEvalQuery
	templates map[string]string
	pure      bool
}

// Compile compiles bundles into a Policy, preparing every query once. Bundles must not overlap in
// their roots. The revision is the bundles' revisions joined with "+", in the order given.
func Compile(ctx context.Context, bundles ...*bundle.Bundle) (*Policy, error) {
	if len(bundles) == 0 {
		return nil, ErrNoBundle
	}
	var opts []func(*rego.Rego)
	var revisions []string
	served := make([]*bundle.Bundle, len(bundles))
	for i, b := range bundles {
		b = withoutTests(b)
		served[i] = b
		name := fmt.Sprintf("bundle-%d", i)
		opts = append(opts, rego.ParsedBundle(name, b))
		if b.Manifest.Revision != "" {
			revisions = append(revisions, b.Manifest.Revision)
		}
	}
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		o := append([]func(*rego.Rego){rego.Query(query), rego.StrictBuiltinErrors(true), rego.StoreReadAST(true)}, opts...)
		pq, err := rego.New(o...).PrepareForEval(ctx)
		if err != nil {
			return pq, fmt.Errorf("prepare %s: %w", query, err)
		}
		return pq, nil
	}
	p := &Policy{revision: strings.Join(revisions, "+"), pure: pure(served)}
	var err error
	if p.mutate, err = prepare(MutateQuery); err != nil {
		return nil, err
	}
	if p.validate, err = prepare(ValidateQuery); err != nil {
		return nil, err
	}
	tq, err := prepare(TemplatesQuery)
	if err != nil {
		return nil, err
	}
	if p.templates, err = readTemplates(ctx, tq); err != nil {
		return nil, err
	}
	return p, nil
}

// withoutTests is b without its `_test.rego` modules, which are for `opa test`: a bundle read from
// a directory or a file never has them, but one downloaded from a bundle server may.
func withoutTests(b *bundle.Bundle) *bundle.Bundle {
	kept := make([]bundle.ModuleFile, 0, len(b.Modules))
	for _, m := range b.Modules {
		if !strings.HasSuffix(m.Path, "_test.rego") {
			kept = append(kept, m)
		}
	}
	if len(kept) == len(b.Modules) {
		return b
	}
	c := *b
	c.Modules = kept
	return &c
}

// Pure reports whether the bundles' answers depend on nothing but their data and the input less
// input.request.uid: no module calls a non-deterministic built-in (time.now_ns, http.send,
// rand.intn, ...) or one that reads the clock (io.jwt.decode_verify, ...), and none reads the
// request's uid, directly or through the whole of input.request. Two admissions of the same pod
// then get the same answer, and the engine may reuse it.
func (p *Policy) Pure() bool { return p.pure }

func pure(bundles []*bundle.Bundle) bool {
	ok := true
	for _, b := range bundles {
		for _, m := range b.Modules {
			if m.Parsed == nil {
				return false
			}
			ast.WalkRefs(m.Parsed, func(ref ast.Ref) bool {
				name := ref.String()
				if f, found := ast.BuiltinMap[name]; found && (f.Nondeterministic || slices.Contains(readsClock, name)) {
					ok = false
				}
				if readsRequestUID(ref) {
					ok = false
				}
				return !ok
			})
		}
	}
	return ok
}

// readsClock names the built-ins OPA does not flag as non-deterministic that still read the
// current time: a token or certificate valid at one admission may have expired at the next.
var readsClock = []string{
	"io.jwt.decode_verify",
	"crypto.x509.parse_and_verify_certificates",
	"crypto.x509.parse_and_verify_certificates_with_options",
}

// readsRequestUID reports whether ref may read input.request.uid: it is input, input.request, or
// goes through either with a key that is not a constant, or is input.request.uid itself.
func readsRequestUID(ref ast.Ref) bool {
	if !ref[0].Equal(ast.InputRootDocument) {
		return false
	}
	for i, want := range []string{"request", "uid"} {
		if len(ref) <= i+1 {
			return true
		}
		key, isString := ref[i+1].Value.(ast.String)
		if !isString {
			return true
		}
		if string(key) != want {
			return false
		}
	}
	return true
}

func readTemplates(ctx context.Context, pq rego.PreparedEvalQuery) (map[string]string, error) {
	rs, err := pq.Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TemplatesQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%s: %w: the bundle ships no templates", TemplatesQuery, ErrUndefined)
	}
	raw, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: %w: want an object of variant name to template text", TemplatesQuery, ErrMalformed)
	}
	out := make(map[string]string, len(raw))
	for name, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s.%s: %w: want a string, got %T", TemplatesQuery, name, ErrMalformed, v)
		}
		out[name] = s
	}
	return out, nil
}

// Revision names the compiled bundles' revision.
func (p *Policy) Revision() string { return p.revision }

// Templates returns the template text of each variant, keyed by variant name.
func (p *Policy) Templates() map[string]string { return p.templates }

// Variants lists the variants the bundle has templates for, sorted; partials (names starting with
// "_") are not variants.
func (p *Policy) Variants() []string {
	names := make([]string, 0, len(p.templates))
	for n := range p.templates {
		if !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Decide evaluates the mutating decision for input.
func (p *Policy) Decide(ctx context.Context, input ast.Value) (Decision, error) {
	v, err := evalOne(ctx, p.mutate, MutateQuery, input)
	if err != nil {
		return Decision{}, err
	}
	return parseDecision(v)
}

// Validate evaluates the validating rules for input.
func (p *Policy) Validate(ctx context.Context, input ast.Value) (Verdict, error) {
	v, err := evalOne(ctx, p.validate, ValidateQuery, input)
	if err != nil {
		return Verdict{}, err
	}
	return parseVerdict(v)
}

func evalOne(ctx context.Context, pq rego.PreparedEvalQuery, query string, input ast.Value) (any, error) {
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%s: %w", query, ErrUndefined)
	}
	return rs[0].Expressions[0].Value, nil
}

// Trace evaluates the mutating decision for input with OPA's tracer on and writes the evaluation
// trace to w, each step with its policy file and line: how the decision was reached.
func (p *Policy) Trace(ctx context.Context, input ast.Value, w io.Writer) error {
	buf := topdown.NewBufferTracer()
	if _, err := p.mutate.Eval(ctx, rego.EvalParsedInput(input), rego.EvalQueryTracer(buf)); err != nil {
		return fmt.Errorf("evaluate %s: %w", MutateQuery, err)
	}
	topdown.PrettyTraceWithLocation(w, *buf)
	return nil
}
