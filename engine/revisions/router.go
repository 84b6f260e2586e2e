package revisions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/rego-injector/rego-injector/engine/injector"
)

// SelectionQuery is the rule of the selection policy the router evaluates.
const SelectionQuery = "data.revisions.selection"

// Router evaluates the selection policy (policies/revisions/selection.rego): which revision
// answers a pod, given its namespace's labels, its own, the tags and the revisions served.
type Router struct {
	query rego.PreparedEvalQuery
	// switchKeys and revKeys are the policy's switch_keys and rev_keys: the labels it reads, and so
	// what a remembered answer is keyed by (key).
	switchKeys, revKeys []string
}

// NewRouter compiles the selection policy from its module source. The policy must define
// switch_keys and rev_keys, the label keys it reads, as lists of strings.
func NewRouter(ctx context.Context, name string, module []byte) (*Router, error) {
	opts := []func(*rego.Rego){rego.Module(name, string(module))}
	q, err := rego.New(append(opts, rego.Query(SelectionQuery))...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("selection policy: %w", err)
	}
	// The label keys the policy reads, for key, evaluated once: each wrapped in a list, which is
	// empty when the rule is undefined.
	rs, err := rego.New(append(opts, rego.Query("switch := [k | k := data.revisions.switch_keys]; rev := [k | k := data.revisions.rev_keys]"))...).Eval(ctx)
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("%d results", len(rs))
	}
	if err != nil {
		return nil, fmt.Errorf("selection policy: read switch_keys and rev_keys: %w", err)
	}
	r := &Router{query: q}
	into := map[string]*[]string{"switch": &r.switchKeys, "rev": &r.revKeys}
	for _, rule := range []string{"switch", "rev"} {
		wrapped, _ := rs[0].Bindings[rule].([]any)
		if len(wrapped) == 0 {
			return nil, fmt.Errorf("selection policy: %s_keys is undefined: it names the labels the policy reads", rule)
		}
		if *into[rule], err = labelKeys(wrapped[0]); err != nil {
			return nil, fmt.Errorf("selection policy: %s_keys = %v: %w", rule, wrapped[0], err)
		}
	}
	return r, nil
}

// labelKeys reads a list of label keys.
func labelKeys(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("want a list of label keys")
	}
	keys := make([]string, len(list))
	for i, k := range list {
		if keys[i], ok = k.(string); !ok {
			return nil, errors.New("want a list of label keys")
		}
	}
	return keys, nil
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

// key is everything of in the selection policy reads: the namespace's name, its switch and
// revision labels, the pod's revision labels (the keys the policy names), the tags, the revisions
// served and --revision. The selection policy must read nothing else
// (policies/revisions/selection.rego says so).
func (r *Router) key(in Input) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	label := func(labels map[string]string, key string) {
		if v, ok := labels[key]; ok {
			field(v)
		} else {
			b.WriteByte('-')
		}
	}
	field(in.Forced)
	field(in.Namespace)
	for _, key := range r.switchKeys {
		label(in.NamespaceLabs, key)
	}
	for _, key := range r.revKeys {
		label(in.NamespaceLabs, key)
	}
	b.WriteByte('|')
	for _, key := range r.revKeys {
		label(in.PodLabels, key)
	}
	for _, tag := range slices.Sorted(maps.Keys(in.Tags)) {
		field(tag)
		field(in.Tags[tag])
	}
	b.WriteByte('|')
	for _, name := range in.Revisions {
		field(name)
	}
	return b.String()
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
