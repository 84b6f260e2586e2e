package registration

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a person: each overlap with the pod that shows it and the
// namespaces where it happens now, then the warnings, then a count.
func WriteTable(w io.Writer, r Report) error {
	var b strings.Builder
	configs := map[string]bool{}
	owners := map[string]int{}
	for _, e := range r.Entries {
		configs[e.Configuration] = true
		owners[e.Owner]++
	}
	fmt.Fprintf(&b, "%d injector entries in %d configurations (%d of rego-injector, %d of Istio)\n",
		len(r.Entries), len(configs), owners[OwnerRegoInjector], owners[OwnerIstio])
	for _, o := range r.Overlaps {
		fmt.Fprintf(&b, "\nOVERLAP  %s (%s)\n    and  %s (%s)\n", o.First, o.First.Owner, o.Second, o.Second.Owner)
		pod := "any pod"
		if len(o.PodLabels) > 0 {
			pod = "a pod labelled " + labelList(o.PodLabels)
		}
		fmt.Fprintf(&b, "         both are called for %s in a namespace labelled %s\n", pod, labelList(o.NamespaceLabels))
		if len(o.Namespaces) > 0 {
			fmt.Fprintf(&b, "         namespaces where it happens now: %s\n", strings.Join(o.Namespaces, ", "))
		} else {
			fmt.Fprintf(&b, "         no namespace has those labels now\n")
		}
		if conditions := slices.Concat(o.First.MatchConditions, o.Second.MatchConditions); len(conditions) > 0 {
			fmt.Fprintf(&b, "         unless matchConditions keep the pod out (not judged here): %s\n", strings.Join(slices.Compact(slices.Sorted(slices.Values(conditions))), ", "))
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\n")
	}
	for _, x := range r.Warnings {
		switch {
		case x.Namespace != "":
			fmt.Fprintf(&b, "WARNING  namespace %s: %s\n", x.Namespace, x.Message)
		case x.Configuration != "":
			fmt.Fprintf(&b, "WARNING  configuration %s: %s\n", x.Configuration, x.Message)
		default:
			fmt.Fprintf(&b, "WARNING  %s\n", x.Message)
		}
	}
	b.WriteString("\n")
	if len(r.Overlaps) == 0 {
		fmt.Fprintf(&b, "no overlap among the %s: no pod is sent to two of them; %s\n", count(len(r.Entries), "injector entry"), count(len(r.Warnings), "warning"))
	} else {
		fmt.Fprintf(&b, "%s: those pods would be injected twice, or by two injectors; %s\n", count(len(r.Overlaps), "overlap"), count(len(r.Warnings), "warning"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count is "1 thing" or "n things" ("entry": "entries").
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if plural, ok := strings.CutSuffix(thing, "y"); ok {
		return fmt.Sprintf("%d %sies", n, plural)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// labelList writes labels as {k=v, ...}, sorted, {} for none.
func labelList(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
