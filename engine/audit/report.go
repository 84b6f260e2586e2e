package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// group is the findings of one owner that agree in state, have and want.
type group struct {
	first Finding
	pods  []string
}

// WriteTable writes a summary line, then one row per owner and state (a bare pod is its own
// owner), then the command that rolls each finding's workload.
func WriteTable(w io.Writer, r Report) error {
	var counts []string
	total := 0
	for _, s := range States {
		total += r.Pods[s]
		if r.Pods[s] > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", r.Pods[s], s))
		}
	}
	judgedBy := "revision " + r.Revision
	if len(r.Revisions) > 0 {
		var each []string
		for _, name := range slices.Sorted(maps.Keys(r.Revisions)) {
			each = append(each, name+" at "+r.Revisions[name])
		}
		judgedBy = "revisions " + strings.Join(each, ", ")
	}
	fmt.Fprintf(w, "%d pods judged by %s: %s\n", total, judgedBy, strings.Join(counts, ", "))
	if len(r.Findings) == 0 {
		_, err := fmt.Fprintln(w, "every pod agrees with policy")
		return err
	}
	var groups []*group
	index := map[string]*group{}
	for _, f := range r.Findings {
		key := strings.Join([]string{f.Namespace, ownerKey(f.Owner), string(f.State), injection(f.Have), injection(f.Want)}, "\x00")
		if f.Owner == nil {
			key += "\x00" + f.Pod
		}
		g := index[key]
		if g == nil {
			g = &group{first: f}
			index[key] = g
			groups = append(groups, g)
		}
		g.pods = append(g.pods, f.Pod)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tOWNER\tPODS\tSTATE\tHAVE\tWANT\tWHY")
	var restarts []string
	for _, g := range groups {
		f := g.first
		owner := "Pod/" + f.Pod
		if f.Owner != nil {
			owner = f.Owner.Kind + "/" + f.Owner.Name
			if restart := rollout(f); restart != "" && f.State != StateError && !slices.Contains(restarts, restart) {
				restarts = append(restarts, restart)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", f.Namespace, owner, len(g.pods), f.State, injection(f.Have), injection(f.Want), f.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(restarts) > 0 {
		fmt.Fprintln(w, "\nTo bring these workloads in line with policy:")
		for _, r := range restarts {
			fmt.Fprintln(w, "  "+r)
		}
	}
	return nil
}

// rollout is the command that recreates the pods of f's owner, when kubectl has one for its kind.
func rollout(f Finding) string {
	switch f.Owner.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		return fmt.Sprintf("kubectl rollout restart -n %s %s/%s", f.Namespace, strings.ToLower(f.Owner.Kind), f.Owner.Name)
	}
	return ""
}

// injection writes an Injection as variant@revision, or "none".
func injection(i Injection) string {
	if !i.Injected {
		return "none"
	}
	if i.Rev != "" && i.Rev != revisions.DefaultRevision {
		return i.Variant + "@" + i.Rev + "/" + i.Revision
	}
	return i.Variant + "@" + i.Revision
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
