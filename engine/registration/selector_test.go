package registration

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func req(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

func sel(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

const (
	in     = metav1.LabelSelectorOpIn
	notIn  = metav1.LabelSelectorOpNotIn
	exists = metav1.LabelSelectorOpExists
	dne    = metav1.LabelSelectorOpDoesNotExist
)

// matchesAll checks labels against each selector with apimachinery's own matching, as the apiserver
// does; nil matches everything, as a webhook's unset selector does.
func matchesAll(t *testing.T, set map[string]string, selectors ...*metav1.LabelSelector) bool {
	t.Helper()
	for _, s := range selectors {
		if s == nil {
			continue
		}
		ls, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatalf("selector %v: %v", s, err)
		}
		if !ls.Matches(labels.Set(set)) {
			return false
		}
	}
	return true
}

func TestWitness(t *testing.T) {
	for _, tc := range []struct {
		name      string
		selectors []*metav1.LabelSelector
		want      map[string]string // nil: unsatisfiable
		conflict  string
		refused   bool // the apiserver refuses the selector, so apimachinery cannot check the witness
	}{
		{name: "no selector", want: map[string]string{}},
		{name: "nil matches everything", selectors: []*metav1.LabelSelector{nil, nil}, want: map[string]string{}},
		{name: "empty matches everything", selectors: []*metav1.LabelSelector{{}}, want: map[string]string{}},
		{name: "matchLabels", selectors: []*metav1.LabelSelector{{MatchLabels: map[string]string{"a": "1"}}, sel(req("b", exists))},
			want: map[string]string{"a": "1", "b": "any"}},
		{name: "matchLabels disagree", selectors: []*metav1.LabelSelector{{MatchLabels: map[string]string{"a": "1"}}, {MatchLabels: map[string]string{"a": "2"}}},
			conflict: "a"},
		{name: "In intersected", selectors: []*metav1.LabelSelector{sel(req("a", in, "1", "2", "3")), sel(req("a", in, "3", "2"))},
			want: map[string]string{"a": "2"}},
		{name: "In disjoint", selectors: []*metav1.LabelSelector{sel(req("a", in, "1")), sel(req("a", in, "2"))}, conflict: "a"},
		{name: "In minus NotIn", selectors: []*metav1.LabelSelector{sel(req("a", in, "1", "2")), sel(req("a", notIn, "1"))},
			want: map[string]string{"a": "2"}},
		{name: "In within NotIn", selectors: []*metav1.LabelSelector{sel(req("a", in, "1", "2")), sel(req("a", notIn, "2", "1"))}, conflict: "a"},
		{name: "empty In matches nothing", selectors: []*metav1.LabelSelector{sel(req("a", in))}, conflict: "a"},
		{name: "empty NotIn matches everything", selectors: []*metav1.LabelSelector{sel(req("a", notIn))}, want: map[string]string{}, refused: true},
		{name: "NotIn alone: key absent", selectors: []*metav1.LabelSelector{sel(req("a", notIn, "1")), sel(req("a", notIn, "2"))},
			want: map[string]string{}},
		{name: "NotIn and Exists: a value outside", selectors: []*metav1.LabelSelector{sel(req("a", notIn, "any", "any-1")), sel(req("a", exists))},
			want: map[string]string{"a": "any-2"}},
		{name: "Exists and DoesNotExist", selectors: []*metav1.LabelSelector{sel(req("a", exists)), sel(req("a", dne))}, conflict: "a"},
		{name: "In and DoesNotExist", selectors: []*metav1.LabelSelector{sel(req("a", in, "1")), sel(req("a", dne))}, conflict: "a"},
		{name: "NotIn and DoesNotExist", selectors: []*metav1.LabelSelector{sel(req("a", notIn, "1")), sel(req("a", dne))}, want: map[string]string{}},
		{name: "first conflicting key named", selectors: []*metav1.LabelSelector{sel(req("b", exists), req("c", in)), sel(req("b", dne))}, conflict: "b"},
		{name: "switch on and off", selectors: []*metav1.LabelSelector{
			sel(req("istio-injection", in, "enabled")),
			sel(req("istio-injection", notIn, "enabled", "disabled"), req("rego-injector.io/rev", dne)),
		}, conflict: "istio-injection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conflict, err := Witness(tc.selectors...)
			if err != nil {
				t.Fatal(err)
			}
			if conflict != tc.conflict {
				t.Fatalf("conflict on %q, want %q (witness %v)", conflict, tc.conflict, got)
			}
			if tc.want == nil {
				if got != nil {
					t.Fatalf("witness %v for unsatisfiable selectors", got)
				}
				return
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("witness %v, want %v", got, tc.want)
			}
			if !tc.refused && !matchesAll(t, got, tc.selectors...) {
				t.Errorf("witness %v does not match the selectors", got)
			}
		})
	}
}

func TestNamespaceWitness(t *testing.T) {
	for _, tc := range []struct {
		name     string
		selector *metav1.LabelSelector
		want     string // the name the witness gives the namespace; "" for none
	}{
		{name: "any namespace", selector: nil, want: "any"},
		{name: "system namespaces excluded", selector: sel(req(NamespaceNameLabel, notIn, "kube-system", "any")), want: "any-1"},
		{name: "one namespace", selector: sel(req(NamespaceNameLabel, in, "prod")), want: "prod"},
		{name: "no namespace lacks its name", selector: sel(req(NamespaceNameLabel, dne))},
		{name: "no namespace is called so", selector: sel(req(NamespaceNameLabel, in, "Not_A_Name"))},
		{name: "the valid name of two", selector: sel(req(NamespaceNameLabel, in, "Not_A_Name", "ok")), want: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conflict, err := NamespaceWitness(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if conflict != NamespaceNameLabel || got != nil {
					t.Fatalf("witness %v, conflict %q: want no namespace", got, conflict)
				}
				return
			}
			if got[NamespaceNameLabel] != tc.want {
				t.Errorf("witness %v, want the namespace called %s", got, tc.want)
			}
			if !matchesAll(t, got, tc.selector) {
				t.Errorf("witness %v does not match", got)
			}
		})
	}
}

func TestWitnessRefusesUnknownOperators(t *testing.T) {
	if _, _, err := Witness(sel(req("a", "Gt", "1"))); err == nil {
		t.Error("no error for operator Gt")
	}
}

// The universe of the property tests: three keys, three values, and one more value standing for
// every value the selectors do not name. Any label set matching some selectors maps onto one in it
// that matches them too, so searching it decides satisfiability exactly.
var (
	universeKeys   = []string{"a", "b", "c"}
	universeValues = []string{"1", "2", "3"}
)

// randomSelector makes a selector over the universe; the value lists of In and NotIn are not empty,
// as the apiserver requires.
func randomSelector(r *rand.Rand) *metav1.LabelSelector {
	if r.IntN(8) == 0 {
		return nil
	}
	s := &metav1.LabelSelector{}
	if r.IntN(3) == 0 {
		s.MatchLabels = map[string]string{universeKeys[r.IntN(3)]: universeValues[r.IntN(3)]}
	}
	for range r.IntN(4) {
		op := []metav1.LabelSelectorOperator{in, notIn, exists, dne}[r.IntN(4)]
		rq := req(universeKeys[r.IntN(3)], op)
		if op == in || op == notIn {
			for _, v := range universeValues {
				if r.IntN(2) == 0 {
					rq.Values = append(rq.Values, v)
				}
			}
			if len(rq.Values) == 0 {
				rq.Values = []string{universeValues[r.IntN(3)]}
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, rq)
	}
	return s
}

// anyMatch searches the universe for a label set matching every selector.
func anyMatch(t *testing.T, selectors []*metav1.LabelSelector) bool {
	choices := append([]string{""}, append(universeValues, "other")...) // "": the key absent
	for i := range len(choices) * len(choices) * len(choices) {
		set := map[string]string{}
		for k, n := range universeKeys {
			if c := choices[i/pow(len(choices), k)%len(choices)]; c != "" {
				set[n] = c
			}
		}
		if matchesAll(t, set, selectors...) {
			return true
		}
	}
	return false
}

func pow(b, e int) int {
	out := 1
	for range e {
		out *= b
	}
	return out
}

// TestWitnessAgreesWithSearch: on thousands of random selector pairs and triples, a witness is
// found exactly when some label set matches them all, and the witness found matches them all.
func TestWitnessAgreesWithSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	satisfiable := 0
	for range 3000 {
		selectors := make([]*metav1.LabelSelector, 2+r.IntN(2))
		for i := range selectors {
			selectors[i] = randomSelector(r)
		}
		got, conflict, err := Witness(selectors...)
		if err != nil {
			t.Fatal(err)
		}
		want := anyMatch(t, selectors)
		if (conflict == "") != want {
			raw, _ := json.Marshal(selectors)
			t.Fatalf("selectors %s: witness %v (conflict %q), but a search says satisfiable=%v", raw, got, conflict, want)
		}
		if want {
			satisfiable++
			if !matchesAll(t, got, selectors...) {
				raw, _ := json.Marshal(selectors)
				t.Fatalf("selectors %s: witness %v does not match them", raw, got)
			}
		}
	}
	if satisfiable < 300 || satisfiable > 2700 {
		t.Errorf("%d of 3000 random cases satisfiable: the generator tests one side only", satisfiable)
	}
}

// FuzzWitness: for any two selectors the apiserver would accept, a witness matches both.
func FuzzWitness(f *testing.F) {
	f.Add(`{"matchLabels":{"a":"1"}}`, `{"matchExpressions":[{"key":"a","operator":"NotIn","values":["2"]}]}`)
	f.Add(`{"matchExpressions":[{"key":"istio-injection","operator":"In","values":["enabled"]}]}`,
		`{"matchExpressions":[{"key":"istio-injection","operator":"DoesNotExist"}]}`)
	f.Add(`{"matchExpressions":[{"key":"a","operator":"NotIn","values":["any","any-1"]},{"key":"a","operator":"Exists"}]}`, `{}`)
	f.Add(`null`, `{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system"]}]}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var sa, sb *metav1.LabelSelector
		if json.Unmarshal([]byte(a), &sa) != nil || json.Unmarshal([]byte(b), &sb) != nil {
			return
		}
		for _, s := range []*metav1.LabelSelector{sa, sb} {
			if s == nil {
				continue
			}
			if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
				return // the apiserver refuses it: invalid keys, values or operators
			}
		}
		for _, witness := range []func(...*metav1.LabelSelector) (map[string]string, string, error){Witness, NamespaceWitness} {
			got, conflict, err := witness(sa, sb)
			if err != nil {
				t.Fatal(err)
			}
			if conflict == "" && !matchesAll(t, got, sa, sb) {
				t.Fatalf("witness %v does not match %s and %s", got, a, b)
			}
		}
	})
}
