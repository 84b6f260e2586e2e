package manifest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes one paragraph per workload: the verdict, then its reasons and warnings.
func WriteText(w io.Writer, workloads []Workload) error {
	for i, wl := range workloads {
		if i > 0 {
			fmt.Fprintln(w)
		}
		name := wl.Name
		if name == "" {
			name = "(unnamed)"
		}
		verdict := "not injected"
		switch {
		case wl.Current != nil && !wl.Changed:
			verdict = "already injected, variant " + wl.Current.Variant + "; no change"
		case wl.Decision.Inject:
			verdict = "inject, variant " + wl.Decision.Variant
		}
		fmt.Fprintf(w, "%s/%s in namespace %s (document %d): %s [revision %s]\n", wl.Kind, name, wl.Namespace, wl.Document, verdict, wl.Revision)
		for _, r := range wl.Decision.Reasons {
			fmt.Fprintf(w, "  because %s\n", r)
		}
		for _, warn := range wl.Decision.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
		if wl.Trace != "" {
			fmt.Fprintf(w, "  evaluation trace:\n")
			for _, line := range strings.Split(strings.TrimRight(wl.Trace, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	if len(workloads) == 0 {
		_, err := fmt.Fprintln(w, "no workloads found")
		return err
	}
	return nil
}

// WriteJSON writes the workloads as one indented JSON array.
func WriteJSON(w io.Writer, workloads []Workload) error {
	if workloads == nil {
		workloads = []Workload{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(workloads)
}
