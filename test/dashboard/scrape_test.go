package main

import (
	"math"
	"strings"
	"testing"
)

// exposition is a cut of what rego-injector serve's /metrics writes, with a label value holding
// every escape and a sample with its own timestamp.
const exposition = `# HELP rego_injector_admission_duration_seconds Time from the decoded review to the answer.
# TYPE rego_injector_admission_duration_seconds histogram
rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="5e-05"} 0
rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="0.0001"} 3
rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="+Inf"} 12
rego_injector_admission_duration_seconds_sum{endpoint="inject"} 0.0123
rego_injector_admission_duration_seconds_count{endpoint="inject"} 12
# HELP rego_injector_admissions_total Admission reviews answered.
# TYPE rego_injector_admissions_total counter
rego_injector_admissions_total{endpoint="inject",reason="",result="injected",variant="sidecar"} 1027
rego_injector_admissions_total{endpoint="inject",reason="a \"quoted\" \\ back\nslash",result="skipped",variant=""} 3 1700000000000
go_goroutines 14
`

func TestParseExposition(t *testing.T) {
	s := newStore()
	keep := map[string]bool{admissionsMetric: true, latencyMetric: true}
	if err := parseExposition(strings.NewReader(exposition), keep, s, 7000); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, name := range []string{latencyMetric, admissionsMetric} {
		for _, sr := range s.selectSeries(name) {
			if len(sr.Samples) != 1 || sr.Samples[0].T != 7000 {
				t.Errorf("%s: samples %v, want one at 7000 ms", seriesKey(sr.Name, sr.Labels), sr.Samples)
			}
			got = append(got, seriesKey(sr.Name, sr.Labels)+" "+formatTick(sr.Samples[0].V))
		}
	}
	want := []string{
		`rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="+Inf"} 12`,
		`rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="0.0001"} 3`,
		`rego_injector_admission_duration_seconds_bucket{endpoint="inject",le="5e-05"} 0`,
		`rego_injector_admissions_total{endpoint="inject",reason="",result="injected",variant="sidecar"} 1027`,
		`rego_injector_admissions_total{endpoint="inject",reason="a \"quoted\" \\ back\nslash",result="skipped",variant=""} 3`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(s.series); n != len(want) {
		t.Errorf("%d series kept, want %d (the _sum, _count and go_ series are not)", n, len(want))
	}
}

func TestParseSampleLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		name  string
		value float64
		err   bool
	}{
		{line: `up 1`, name: "up", value: 1},
		{line: `x{} +Inf`, name: "x", value: math.Inf(+1)},
		{line: `x{a="1",} 2 123`, name: "x", value: 2},
		{line: `x{a="1"`, err: true},
		{line: `x{a=1} 2`, err: true},
		{line: `x{a="1} 2`, err: true},
		{line: `x{a="1"}`, err: true},
		{line: `x{a="1"} two`, err: true},
		{line: `x`, err: true},
	} {
		name, _, value, err := parseSampleLine(tc.line)
		if (err != nil) != tc.err || err == nil && (name != tc.name || value != tc.value) {
			t.Errorf("parseSampleLine(%q) = %q, %v, %v", tc.line, name, value, err)
		}
	}
}
