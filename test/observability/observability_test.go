// Package observability checks the Grafana dashboard and the Prometheus rules under deploy/ against
// the metrics rego-injector serve exports and the alerts docs/observability.md describes.
package observability

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	dashboardFile = "../../deploy/grafana/rego-injector-dashboard.json"
	ruleFile      = "../../deploy/prometheus/prometheus-rule.yaml"
	docFile       = "../../docs/observability.md"
)

// TestNamedMetricsAreExported checks that every metric the dashboard and the rules query is one the
// server exports, as its live /metrics shows it (or, for the few families no test drive can fill,
// as it registers it: see exportedFamilies).
func TestNamedMetricsAreExported(t *testing.T) {
	exported := exportedFamilies(t)
	queries := map[string][]string{} // metric name -> where it is used
	for where, expr := range dashboardQueries(t, loadDashboard(t)) {
		for _, name := range metricNames(t, where, expr) {
			queries[name] = append(queries[name], where)
		}
	}
	for _, r := range loadRules(t) {
		where := fmt.Sprintf("%s: alert %s", ruleFile, r.Alert)
		for _, name := range metricNames(t, where, r.Expr) {
			queries[name] = append(queries[name], where)
		}
	}
	if len(queries) == 0 {
		t.Fatal("no metric names found in the dashboard or the rules")
	}
	for _, name := range slices.Sorted(maps.Keys(queries)) {
		if err := exported.check(name); err != nil {
			for _, where := range queries[name] {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
}

// serverPrefix is how the names of the families the server exports begin: its own, and those of the
// Go and process collectors beside them.
var serverPrefix = regexp.MustCompile(`^(rego_injector|go|process)_`)

// prometheusOwn are series Prometheus makes itself for every target, not the server.
var prometheusOwn = map[string]bool{"up": true}

// families is what the server exports: family name to type ("counter", "gauge", "histogram",
// "summary", "untyped"), and the names only registered, whose type the scrape did not show.
type families struct {
	live       map[string]string
	registered map[string]bool
}

// check says whether a series name a query selects is exported: the name of a counter, gauge or
// untyped family, or a histogram's _bucket, _sum or _count, or a summary's _sum or _count (its
// quantiles are the bare name).
func (f families) check(name string) error {
	if prometheusOwn[name] {
		return nil
	}
	if !serverPrefix.MatchString(name) {
		return fmt.Errorf("metric %s is none of the server's (rego_injector_*, go_*, process_*) nor Prometheus's own", name)
	}
	if typ, ok := f.live[name]; ok {
		if typ == "histogram" {
			return fmt.Errorf("%s is a histogram: query %[1]s_bucket, %[1]s_sum or %[1]s_count", name)
		}
		return nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch typ := f.live[base]; {
		case typ == "histogram", typ == "summary" && suffix != "_bucket":
			return nil
		case typ != "":
			return fmt.Errorf("%s: %s is a %s, which has no %s series", name, base, typ, suffix)
		}
	}
	if f.registered[name] {
		return nil
	}
	return fmt.Errorf("the server does not export %s", name)
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Collapsed  bool        `json:"collapsed"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// datasourceVariable is the dashboard variable every panel and query takes its Prometheus from.
const datasourceVariable = "${datasource}"

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels lists the panels of d with those of collapsed rows, which hold their own.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// dashboardQueries returns every PromQL expression of the dashboard (panel targets and query
// variables), keyed by where it is.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("%s: panel %d %q, target %s", dashboardFile, p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// label_values(selector, label): only the selector is PromQL.
		q := v.Definition
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[1]
		}
		out[fmt.Sprintf("%s: variable %s", dashboardFile, v.Name)] = q
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want at least 39", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q and title %q must be set", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != datasourceVariable) {
			t.Errorf("variable %s: datasource must be %s", v.Name, datasourceVariable)
		}
		if v.Type == "query" {
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil || q.Query != v.Definition {
				t.Errorf("variable %s: query %s is not its definition %q", v.Name, v.Query, v.Definition)
			}
		}
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("want a datasource variable named datasource, have %v", vars)
	}
	ids := map[int]string{}
	for _, p := range allPanels(d) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: no id", name)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", name, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		switch g := p.GridPos; {
		case g == nil:
			t.Errorf("%s: no gridPos", name)
		case g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24:
			t.Errorf("%s: gridPos %+v is off the 24-column grid", name, *g)
		}
		if p.Type == "row" {
			if !p.Collapsed && len(p.Panels) > 0 {
				t.Errorf("%s: an expanded row holds no panels (they follow it), a collapsed one does", name)
			}
			continue
		}
		if len(p.Panels) > 0 {
			t.Errorf("%s: only rows hold panels", name)
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceVariable {
			t.Errorf("%s: datasource must be %s, is %+v", name, datasourceVariable, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s, target %s: no expr", name, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q missing or repeated", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != datasourceVariable {
				t.Errorf("%s, target %s: datasource %+v, want %s", name, tg.RefID, *tg.Datasource, datasourceVariable)
			}
		}
	}
}

// rule is one alerting rule of the PrometheusRule.
type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &pr); err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Fatalf("%s: %s %s %q is not a named monitoring.coreos.com/v1 PrometheusRule", ruleFile, pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	var rules []rule
	for _, g := range pr.Spec.Groups {
		if g.Name == "" {
			t.Errorf("%s: a group has no name", ruleFile)
		}
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", ruleFile)
	}
	return rules
}

var (
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	severities   = map[string]bool{"critical": true, "warning": true, "info": true}
)

func TestRulesAreWellFormed(t *testing.T) {
	doc, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(doc))
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		name := "alert " + r.Alert
		switch {
		case r.Record != "":
			t.Errorf("recording rule %s: the file holds alerts only", r.Record)
			continue
		case r.Alert == "":
			t.Errorf("a rule with expr %q has no alert name", r.Expr)
		case seen[r.Alert]:
			t.Errorf("%s: repeated", name)
		}
		seen[r.Alert] = true
		if strings.TrimSpace(r.Expr) == "" {
			t.Errorf("%s: no expr", name)
		}
		if r.For != "" && !promDuration.MatchString(r.For) {
			t.Errorf("%s: for %q is not a Prometheus duration", name, r.For)
		}
		if !severities[r.Labels["severity"]] {
			t.Errorf("%s: severity label %q, want critical, warning or info", name, r.Labels["severity"])
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("%s: no %s annotation", name, key)
			}
		}
		// The runbook is the alert's section of docs/observability.md.
		url := r.Annotations["runbook_url"]
		page, anchor, _ := strings.Cut(url, "#")
		if !strings.HasSuffix(page, "/docs/observability.md") || !anchors[anchor] {
			t.Errorf("%s: runbook_url %s is not a section of %s", name, url, docFile)
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown document.
func headingAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

// TestRulesMatchTheDoc checks that the table of docs/observability.md#suggested-alerts lists the
// alerts of the rule file, with the same expressions, for and severity.
func TestRulesMatchTheDoc(t *testing.T) {
	raw, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Suggested alerts\n")
	if !ok {
		t.Fatalf("%s: no section Suggested alerts", docFile)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string][3]string{} // alert -> expr, for, severity
	var order []string
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		// No expression holds a |, so the cells are what the bars separate.
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|"), "|")
		if len(cells) != 4 {
			t.Errorf("%s: alert row %q has %d cells, want 4 (alert, expression, for, severity)", docFile, line, len(cells))
			continue
		}
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		documented[cells[0]] = [3]string{cells[1], cells[2], cells[3]}
		order = append(order, cells[0])
	}
	var inFile []string
	for _, r := range loadRules(t) {
		inFile = append(inFile, r.Alert)
		want, ok := documented[r.Alert]
		if !ok {
			t.Errorf("alert %s of %s is not in the table of %s", r.Alert, ruleFile, docFile)
			continue
		}
		got := [3]string{strings.TrimSpace(r.Expr), r.For, r.Labels["severity"]}
		if got != want {
			t.Errorf("alert %s: %s has (expr, for, severity)\n  %q\n%s has\n  %q", r.Alert, ruleFile, got, docFile, want)
		}
	}
	if !slices.Equal(order, inFile) {
		t.Errorf("alerts in %s: %v\nin %s: %v\n(same alerts, same order)", docFile, order, ruleFile, inFile)
	}
}

// PromQL, reduced to what names metrics: string literals, label matchers, ranges and label lists
// of by, without, on, ignoring, group_left and group_right are removed first.
var (
	promStrings   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promLabelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promToken     = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?|\.?[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords  = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		"atan2": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "start": true, "end": true,
	}
)

// metricNames returns the metric names expr selects: the identifiers that are not functions,
// aggregations, keywords, label names, numbers, durations or Grafana variables.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e := promStrings.ReplaceAllString(expr, `""`)
	if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") ||
		strings.Count(e, "[") != strings.Count(e, "]") {
		t.Errorf("%s: unbalanced brackets in %q", where, expr)
	}
	e = promMatchers.ReplaceAllString(e, "{}")
	e = promRanges.ReplaceAllString(e, "[]")
	e = promLabelList.ReplaceAllString(e, " ")
	var names []string
	for _, tok := range promToken.FindAllString(e, -1) {
		first := tok[0]
		switch {
		case first == '$' || first == '.' || (first >= '0' && first <= '9'):
			continue // a variable, a number or a duration
		case strings.HasSuffix(tok, "("):
			continue // a function or an aggregation
		case promKeywords[strings.ToLower(tok)]:
			continue
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}
