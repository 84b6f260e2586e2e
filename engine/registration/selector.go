package registration

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrSelector is returned for a label selector with an operator Kubernetes does not know.
var ErrSelector = errors.New("unreadable label selector")

// NamespaceNameLabel is the label the apiserver puts on every namespace, its name as value.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// A conjunction of label selectors constrains each key on its own: every requirement of a selector
// (matchLabels included) names one key, and a label set matches the selectors when it matches every
// requirement. So the conjunction is satisfiable exactly when, key by key, some choice (the key absent,
// or present with one value) meets all that is asked of that key. Per key that is: DoesNotExist
// forbids Exists and In; the In lists intersect; NotIn removes values, and matches an absent key.

// keyConstraint is what a conjunction of selectors asks of one label key.
type keyConstraint struct {
	hasIn  bool            // some In (or matchLabels) names the key
	in     map[string]bool // with hasIn: the values every In allows
	notIn  map[string]bool // values no NotIn allows
	exists bool            // an Exists, or an In, needs the key
	absent bool            // a DoesNotExist forbids the key
}

// conjunction maps each key some selector names to what the selectors ask of it.
type conjunction map[string]*keyConstraint

func (c conjunction) key(k string) *keyConstraint {
	kc := c[k]
	if kc == nil {
		kc = &keyConstraint{notIn: map[string]bool{}}
		c[k] = kc
	}
	return kc
}

// add joins sel to the conjunction; a nil selector matches everything and adds nothing.
func (c conjunction) add(sel *metav1.LabelSelector) error {
	if sel == nil {
		return nil
	}
	for k, v := range sel.MatchLabels {
		c.key(k).restrictIn([]string{v})
	}
	for _, r := range sel.MatchExpressions {
		kc := c.key(r.Key)
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			kc.restrictIn(r.Values)
		case metav1.LabelSelectorOpNotIn:
			for _, v := range r.Values {
				kc.notIn[v] = true
			}
		case metav1.LabelSelectorOpExists:
			kc.exists = true
		case metav1.LabelSelectorOpDoesNotExist:
			kc.absent = true
		default:
			return fmt.Errorf("%w: key %s: operator %q", ErrSelector, r.Key, r.Operator)
		}
	}
	return nil
}

// restrictIn narrows the values allowed to those in values too. An empty list allows none.
func (kc *keyConstraint) restrictIn(values []string) {
	kc.exists = true
	next := map[string]bool{}
	for _, v := range values {
		if !kc.hasIn || kc.in[v] {
			next[v] = true
		}
	}
	kc.hasIn, kc.in = true, next
}

// choose picks, for one key, absence when allowed and not required, else the first value allowed
// (in sorted order, or made up when any value will do) that valid accepts. ok is false when no
// choice meets the constraint.
func (kc *keyConstraint) choose(required bool, valid func(string) bool) (value string, present, ok bool) {
	if !kc.exists && !required {
		return "", false, true
	}
	if kc.absent {
		return "", false, false
	}
	if kc.hasIn {
		for _, v := range slices.Sorted(maps.Keys(kc.in)) {
			if !kc.notIn[v] && valid(v) {
				return v, true, true
			}
		}
		return "", false, false
	}
	// Any value outside the NotIn lists: there are finitely many of those, so this ends.
	for i := 0; ; i++ {
		v := "any"
		if i > 0 {
			v += "-" + strconv.Itoa(i)
		}
		if !kc.notIn[v] && valid(v) {
			return v, true, true
		}
	}
}

// solve returns a label set matching the conjunction, or the first key (in sorted order) on which
// its selectors contradict each other. required keys must be present with a value valid accepts;
// other values only need to be valid label values, which the selectors' own values are.
func (c conjunction) solve(required map[string]func(string) bool) (labels map[string]string, conflict string) {
	keys := slices.Collect(maps.Keys(c))
	for k := range required {
		if c[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	labels = map[string]string{}
	for _, k := range keys {
		kc := c[k]
		if kc == nil {
			kc = &keyConstraint{}
		}
		valid, isRequired := required[k]
		if !isRequired {
			valid = func(string) bool { return true }
		}
		v, present, ok := kc.choose(isRequired, valid)
		if !ok {
			return nil, k
		}
		if present {
			labels[k] = v
		}
	}
	return labels, ""
}

// Witness returns a label set that every selector matches, holding only the labels some selector
// needs. When no label set matches them all, labels is nil and conflict names the first key (in
// sorted order) the selectors disagree on. A nil selector matches everything; an In with no values
// matches nothing. err is ErrSelector for an operator Kubernetes does not know.
func Witness(selectors ...*metav1.LabelSelector) (labels map[string]string, conflict string, err error) {
	c := conjunction{}
	for _, s := range selectors {
		if err := c.add(s); err != nil {
			return nil, "", err
		}
	}
	labels, conflict = c.solve(nil)
	return labels, conflict, nil
}

// NamespaceWitness is Witness for the labels of a namespace, which always carries NamespaceNameLabel
// with its name, a DNS label: a selector that needs it absent, or set to a value no namespace can be
// called, matches no namespace.
func NamespaceWitness(selectors ...*metav1.LabelSelector) (labels map[string]string, conflict string, err error) {
	c := conjunction{}
	for _, s := range selectors {
		if err := c.add(s); err != nil {
			return nil, "", err
		}
	}
	isName := func(v string) bool { return len(validation.IsDNS1123Label(v)) == 0 }
	labels, conflict = c.solve(map[string]func(string) bool{NamespaceNameLabel: isName})
	return labels, conflict, nil
}
