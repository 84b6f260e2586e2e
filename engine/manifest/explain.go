package manifest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes one paragraph per workload: the verdict, its note, then its reasons and warnings.
// A workload with no pod template to inject is "skipped", its note saying why.
func WriteText(w io.Writer, workloads []Workload) error {
	for i, wl := range workloads {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if wl.Error != "" {
			fmt.Fprintf(w, "%s: ERROR: %s\n", wl.Source, wl.Error)
			continue
		}
		name := wl.Name
		if name == "" {
			name = "(unnamed)"
		}
		where := fmt.Sprintf("document %d", wl.Document)
		if wl.Source != "" {
			where = fmt.Sprintf("%s, document %d", wl.Source, wl.Document)
		}
		if wl.Skipped {
			fmt.Fprintf(w, "%s/%s in namespace %s (%s): skipped, no pod template\n", wl.Kind, name, wl.Namespace, where)
			fmt.Fprintf(w, "  note: %s\n", wl.Note)
			continue
		}
		verdict := "not injected"
		switch {
		case len(wl.Decision.Deny) > 0:
			verdict = "DENIED by the injection policy"
		case wl.Current != nil && !wl.Changed:
			verdict = "already injected, variant " + wl.Current.Variant + "; no change"
		case wl.Decision.Inject:
			verdict = "inject, variant " + wl.Decision.Variant
		}
		fmt.Fprintf(w, "%s/%s in namespace %s (%s): %s [%s]\n", wl.Kind, name, wl.Namespace, where, verdict, decidedBy(wl))
		if wl.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", wl.Note)
		}
		for _, msg := range wl.Decision.Deny {
			fmt.Fprintf(w, "  denied: %s\n", msg)
		}
		for _, r := range wl.Decision.Reasons {
			fmt.Fprintf(w, "  because %s\n", r)
		}
		for _, warn := range wl.Decision.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
		if v := wl.Validation; v != nil {
			switch {
			case len(v.Deny) > 0:
				fmt.Fprintf(w, "  validation: DENIED\n")
			default:
				fmt.Fprintf(w, "  validation: allowed\n")
			}
			for _, msg := range v.Deny {
				fmt.Fprintf(w, "    deny: %s\n", msg)
			}
			for _, msg := range v.Warn {
				fmt.Fprintf(w, "    warning: %s\n", msg)
			}
			for _, msg := range v.DryRun {
				fmt.Fprintf(w, "    dry run (would deny): %s\n", msg)
			}
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

// decidedBy names what decided: the bundle revision, led by the named revision and tag when they
// are not simply the default revision.
func decidedBy(wl Workload) string {
	switch {
	case wl.Decision.Code == "unknown_revision":
		return "no revision"
	case wl.Rev == "":
		return "revision " + wl.Revision
	case wl.Tag != "":
		return fmt.Sprintf("revision %s through tag %s, bundle revision %s", wl.Rev, wl.Tag, wl.Revision)
	case wl.Rev != "default":
		return fmt.Sprintf("revision %s, bundle revision %s", wl.Rev, wl.Revision)
	}
	return "revision " + wl.Revision
}
