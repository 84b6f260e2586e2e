package revisions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/rego-injector/rego-injector/engine/injector"
)

// SelectionQuery is the rule of the selection policy the router evaluates.
const SelectionQuery = "data.revisions.selection"

// Router evaluates the selection policy (policies/revisions/selection.rego): which revision
// answers a pod, given its namespace's labels, its own, the tags and the revisions served.
type Router struct {
	query rego.PreparedEvalQuery
}

// NewRouter compiles the selection policy from its module source.
func NewRouter(ctx context.Context, name string, module []byte) (*Router, error) {
	q, err := rego.New(rego.Query(SelectionQuery), rego.Module(name, string(module))).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("selection policy: %w", err)
	}
	return &Router{query: q}, nil
}

// Input is what the selection policy reads.
type Input struct {
	Namespace     string
	NamespaceLabs map[string]string
	PodLabels     map[string]string
	Revisions     []string
	Tags          map[string]string
	// Forced names a revision or tag chosen on the command line, over every label.
	Forced string
}

// answer is the selection policy's result, as documented on its rule.
type answer struct {
	Revision string            `json:"revision"`
	Tag      string            `json:"tag"`
	Label    map[string]string `json:"label"`
	Forced   bool              `json:"forced"`
	Reasons  []string          `json:"reasons"`
	Warnings []string          `json:"warnings"`
}

// Select evaluates the selection policy on in. A Selection with an empty Name means that no served
// revision answers the pod; its warnings say why.
func (r *Router) Select(ctx context.Context, in Input) (injector.Selection, error) {
	doc := map[string]any{
		"namespace": map[string]any{"name": in.Namespace, "labels": nonNil(in.NamespaceLabs)},
		"pod":       map[string]any{"labels": nonNil(in.PodLabels)},
		"revisions": in.Revisions,
		"tags":      nonNil(in.Tags),
	}
	if in.Forced != "" {
		doc["forced"] = in.Forced
	}
	rs, err := r.query.Eval(ctx, rego.EvalInput(doc))
	if err != nil {
		return injector.Selection{}, fmt.Errorf("select the revision: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return injector.Selection{}, errors.New("select the revision: the selection policy reached no answer")
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return injector.Selection{}, fmt.Errorf("select the revision: %w", err)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return injector.Selection{}, fmt.Errorf("select the revision: the answer %s is not {revision, tag, label, forced, reasons, warnings}: %w", raw, err)
	}
	return injector.Selection{Name: a.Revision, Tag: a.Tag, Label: a.Label, Forced: a.Forced, Reasons: a.Reasons, Warnings: a.Warnings}, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
