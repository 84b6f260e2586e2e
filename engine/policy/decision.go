package policy

import (
	"fmt"
	"slices"
)

// Decision is what the mutating policy decides for one pod.
type Decision struct {
	// Inject says whether the pod gets the sidecar.
	Inject bool `json:"inject"`
	// Code names why a pod is skipped, from a small vocabulary policy defines; it labels metrics.
	// Optional.
	Code string `json:"code,omitempty"`
	// Variant names the template to render; set when Inject is true.
	Variant string `json:"variant,omitempty"`
	// Templates, when set, are the templates to render and merge in order, Variant first (Istio's
	// inject.istio.io/templates); absent means Variant alone. Optional.
	Templates []string `json:"templates,omitempty"`
	// Values are handed to the template as .Values.
	Values map[string]any `json:"values,omitempty"`
	// Reasons explain the decision in sentences a person can act on; there is at least one.
	Reasons []string `json:"reasons"`
	// Warnings are returned to the client whatever the decision.
	Warnings []string `json:"warnings,omitempty"`
	// Deny, when not empty, refuses the pod with these messages; Inject is then false. Optional.
	Deny []string `json:"deny,omitempty"`
	// RefusedOverrides lists what the pod asked for and policy refused, ignored or denied. Optional.
	RefusedOverrides []RefusedOverride `json:"refused_overrides,omitempty"`
	// HonouredOverrides lists the overrides the injected pod got. Optional.
	HonouredOverrides []HonouredOverride `json:"honoured_overrides,omitempty"`
}

// HonouredOverride is one pod annotation policy honoured. Reserved says that policy honoured it
// because of who asked (the subjects that may use it are listed): the engine then records the
// requester in the pod's status annotation, so that the pod is judged later as it was admitted.
type HonouredOverride struct {
	Annotation string `json:"annotation"`
	Value      string `json:"value"`
	Reserved   bool   `json:"reserved,omitempty"`
}

// Reserved lists the annotations of the overrides honoured because of who asked.
func (d Decision) Reserved() []string {
	var out []string
	for _, o := range d.HonouredOverrides {
		if o.Reserved {
			out = append(out, o.Annotation)
		}
	}
	return out
}

// RefusedOverride is one pod annotation policy would not honour.
type RefusedOverride struct {
	Annotation string `json:"annotation"`
	Value      string `json:"value"`
	Reason     string `json:"reason"`
}

// Verdict is what the validating policy says of one object.
type Verdict struct {
	// Deny holds the messages that refuse the object; empty means allowed.
	Deny []string `json:"deny,omitempty"`
	// Warn holds messages returned to the client as warnings.
	Warn []string `json:"warn,omitempty"`
	// DryRun holds violations of rules in dryrun mode: recorded, never shown to the client.
	DryRun []string `json:"dryrun,omitempty"`
	// Violations names the rule and mode of every message above, for metrics. Optional.
	Violations []Violation `json:"violations,omitempty"`
}

// Violation is one rule the object breaks and the enforcement mode it runs in.
type Violation struct {
	Rule    string `json:"rule"`
	Mode    string `json:"mode"`
	Message string `json:"message"`
}

func parseDecision(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("%s: %w: want an object, got %s", MutateQuery, ErrMalformed, typeName(v))
	}
	var d Decision
	inject, ok := obj["inject"].(bool)
	if !ok {
		return d, fmt.Errorf("%s.inject: %w: want a boolean, got %s", MutateQuery, ErrMalformed, typeName(obj["inject"]))
	}
	d.Inject = inject
	var err error
	if d.Reasons, err = stringList(obj, "reasons", MutateQuery); err != nil {
		return d, err
	}
	if len(d.Reasons) == 0 {
		return d, fmt.Errorf("%s.reasons: %w: a decision must give at least one reason", MutateQuery, ErrMalformed)
	}
	if d.Warnings, err = stringList(obj, "warnings", MutateQuery); err != nil {
		return d, err
	}
	if raw, present := obj["code"]; present {
		s, ok := raw.(string)
		if !ok {
			return d, fmt.Errorf("%s.code: %w: want a string, got %s", MutateQuery, ErrMalformed, typeName(raw))
		}
		d.Code = s
	}
	if raw, present := obj["variant"]; present {
		s, ok := raw.(string)
		if !ok {
			return d, fmt.Errorf("%s.variant: %w: want a string, got %s", MutateQuery, ErrMalformed, typeName(raw))
		}
		d.Variant = s
	}
	if raw, present := obj["values"]; present {
		m, ok := raw.(map[string]any)
		if !ok {
			return d, fmt.Errorf("%s.values: %w: want an object, got %s", MutateQuery, ErrMalformed, typeName(raw))
		}
		d.Values = m
	}
	if d.Deny, err = stringList(obj, "deny", MutateQuery); err != nil {
		return d, err
	}
	if d.Inject && len(d.Deny) > 0 {
		return d, fmt.Errorf("%s.deny: %w: a decision cannot both inject and deny", MutateQuery, ErrMalformed)
	}
	if d.RefusedOverrides, err = refusedOverrides(obj); err != nil {
		return d, err
	}
	if d.HonouredOverrides, err = honouredOverrides(obj); err != nil {
		return d, err
	}
	if d.Inject && d.Variant == "" {
		return d, fmt.Errorf("%s.variant: %w: inject is true but no variant is named", MutateQuery, ErrMalformed)
	}
	if d.Templates, err = stringList(obj, "templates", MutateQuery); err != nil {
		return d, err
	}
	if len(d.Templates) > 0 && d.Templates[0] != d.Variant {
		return d, fmt.Errorf("%s.templates: %w: the first template must be the variant, %q", MutateQuery, ErrMalformed, d.Variant)
	}
	if d.Values == nil {
		d.Values = map[string]any{}
	}
	return d, nil
}

// TemplateList is the templates to render in order: Templates, else the variant alone.
func (d Decision) TemplateList() []string {
	if len(d.Templates) > 0 {
		return d.Templates
	}
	return []string{d.Variant}
}

func parseVerdict(v any) (Verdict, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Verdict{}, fmt.Errorf("%s: %w: want a package with deny and warn, got %s", ValidateQuery, ErrMalformed, typeName(v))
	}
	var vd Verdict
	var err error
	if vd.Deny, err = stringList(obj, "deny", ValidateQuery); err != nil {
		return vd, err
	}
	if vd.Warn, err = stringList(obj, "warn", ValidateQuery); err != nil {
		return vd, err
	}
	if vd.DryRun, err = stringList(obj, "dryrun", ValidateQuery); err != nil {
		return vd, err
	}
	raw, err := objectList(obj, "violations", ValidateQuery)
	if err != nil {
		return vd, err
	}
	for i, item := range raw {
		var v Violation
		if v.Rule, err = stringField(item, "rule", fmt.Sprintf("%s.violations[%d]", ValidateQuery, i)); err != nil {
			return vd, err
		}
		if v.Mode, err = stringField(item, "mode", fmt.Sprintf("%s.violations[%d]", ValidateQuery, i)); err != nil {
			return vd, err
		}
		if !slices.Contains(modes, v.Mode) {
			return vd, fmt.Errorf("%s.violations[%d].mode: %w: %q is not one of deny, warn, dryrun", ValidateQuery, i, ErrMalformed, v.Mode)
		}
		if v.Message, err = stringField(item, "message", fmt.Sprintf("%s.violations[%d]", ValidateQuery, i)); err != nil {
			return vd, err
		}
		vd.Violations = append(vd.Violations, v)
	}
	return vd, nil
}

// modes are the enforcement modes a violation may name.
var modes = []string{"deny", "warn", "dryrun"}

func refusedOverrides(obj map[string]any) ([]RefusedOverride, error) {
	raw, err := objectList(obj, "refused_overrides", MutateQuery)
	if err != nil {
		return nil, err
	}
	var out []RefusedOverride
	for i, item := range raw {
		where := fmt.Sprintf("%s.refused_overrides[%d]", MutateQuery, i)
		var r RefusedOverride
		if r.Annotation, err = stringField(item, "annotation", where); err != nil {
			return nil, err
		}
		if r.Value, err = stringField(item, "value", where); err != nil {
			return nil, err
		}
		if r.Reason, err = stringField(item, "reason", where); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func honouredOverrides(obj map[string]any) ([]HonouredOverride, error) {
	raw, err := objectList(obj, "honoured_overrides", MutateQuery)
	if err != nil {
		return nil, err
	}
	var out []HonouredOverride
	for i, item := range raw {
		where := fmt.Sprintf("%s.honoured_overrides[%d]", MutateQuery, i)
		var h HonouredOverride
		if h.Annotation, err = stringField(item, "annotation", where); err != nil {
			return nil, err
		}
		if h.Value, err = stringField(item, "value", where); err != nil {
			return nil, err
		}
		if r, present := item["reserved"]; present {
			b, ok := r.(bool)
			if !ok {
				return nil, fmt.Errorf("%s.reserved: %w: want a boolean, got %s", where, ErrMalformed, typeName(r))
			}
			h.Reserved = b
		}
		out = append(out, h)
	}
	return out, nil
}

// objectList reads obj[key] as a list of objects; absent is empty.
func objectList(obj map[string]any, key, query string) ([]map[string]any, error) {
	raw, present := obj[key]
	if !present {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w: want a list of objects, got %s", query, key, ErrMalformed, typeName(raw))
	}
	out := make([]map[string]any, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s.%s[%d]: %w: want an object, got %s", query, key, i, ErrMalformed, typeName(item))
		}
		out = append(out, m)
	}
	return out, nil
}

// stringField reads obj[key] as a string that must be present.
func stringField(obj map[string]any, key, where string) (string, error) {
	s, ok := obj[key].(string)
	if !ok {
		return "", fmt.Errorf("%s.%s: %w: want a string, got %s", where, key, ErrMalformed, typeName(obj[key]))
	}
	return s, nil
}

// stringList reads obj[key] as a list of strings; absent is empty. Rego sets arrive as arrays.
func stringList(obj map[string]any, key, query string) ([]string, error) {
	raw, present := obj[key]
	if !present {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w: want a list of strings, got %s", query, key, ErrMalformed, typeName(raw))
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("%s.%s[%d]: %w: want a string, got %s", query, key, i, ErrMalformed, typeName(item))
		}
		out = append(out, s)
	}
	return out, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}
