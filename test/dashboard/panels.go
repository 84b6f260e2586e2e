package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The two panels drawn, as deploy/grafana/rego-injector-dashboard.json holds them (panels_test.go
// checks that it still does). The programme computes these queries itself over its scrapes, with
// $__rate_interval as Grafana sets it for a 1 s scrape interval: the larger of four scrape intervals
// and one step plus one scrape interval, 4 s. The $job and $namespace matchers select everything,
// as there is one server.
const (
	admissionsTitle  = "Admissions by endpoint and result"
	admissionsExpr   = `sum by (endpoint, result) (rate(rego_injector_admissions_total{job=~"$job", namespace=~"$namespace"}[$__rate_interval]))`
	admissionsLegend = "{{endpoint}} {{result}}"

	latencyTitle = "Admission latency percentiles"
	// latencyExpr is the expression of each quantile, with %s for it.
	latencyExpr   = `histogram_quantile(%s, sum by (endpoint, le) (rate(rego_injector_admission_duration_seconds_bucket{job=~"$job", namespace=~"$namespace"}[$__rate_interval])))`
	latencyLegend = "p%s {{endpoint}}"
)

// latencyQuantiles are the latency panel's three queries, as written in it, and their legend's p.
var latencyQuantiles = []struct{ q, p string }{{"0.5", "50"}, {"0.9", "90"}, {"0.99", "99"}}

const (
	admissionsMetric = "rego_injector_admissions_total"
	latencyMetric    = "rego_injector_admission_duration_seconds_bucket"
)

// point is one value of a line: NaN where the query gave none (Grafana leaves a gap).
type point struct {
	X, Y float64
}

// line is one series of a panel, named by the panel's legend format.
type line struct {
	Name   string
	Points []point
}

// panel is what one dashboard panel shows.
type panel struct {
	Title string
	// Query is the panel's expression as shown under its title.
	Query string
	// Unit formats the values: "reqps" or "s", as the dashboard's unit.
	Unit  string
	Lines []line
}

// evaluation is how the queries are run: at every step from 0 to end (milliseconds after the first
// scrape), rate() over window.
type evaluation struct {
	end, step, window int64
}

// admissionsPanel evaluates the admissions panel's query over the scrapes.
func admissionsPanel(s *store, ev evaluation) panel {
	counters := s.selectSeries(admissionsMetric)
	b := newLines(ev)
	for i, t := range ev.times() {
		for _, e := range sumBy(rateVector(counters, t, ev.window), "endpoint", "result") {
			b.set(legend(admissionsLegend, e.labels), i, e.v)
		}
	}
	return panel{Title: admissionsTitle, Query: shown(admissionsExpr, ev.window), Unit: "reqps", Lines: b.lines()}
}

// latencyPanel evaluates the latency panel's three queries over the scrapes.
func latencyPanel(s *store, ev evaluation) panel {
	buckets := s.selectSeries(latencyMetric)
	var lines []line
	for _, lq := range latencyQuantiles {
		q, _ := strconv.ParseFloat(lq.q, 64)
		b := newLines(ev)
		for i, t := range ev.times() {
			for _, e := range histogramQuantile(q, sumBy(rateVector(buckets, t, ev.window), "endpoint", "le")) {
				b.set(legend(fmt.Sprintf(latencyLegend, lq.p), e.labels), i, e.v)
			}
		}
		lines = append(lines, b.lines()...)
	}
	quantiles := make([]string, len(latencyQuantiles))
	for i, lq := range latencyQuantiles {
		quantiles[i] = lq.q
	}
	query := shown(fmt.Sprintf(latencyExpr, "q"), ev.window) + "   for q = " + strings.Join(quantiles, ", ")
	return panel{Title: latencyTitle, Query: query, Unit: "s", Lines: lines}
}

// times are the evaluation times.
func (ev evaluation) times() []int64 {
	var out []int64
	for t := int64(0); t <= ev.end; t += ev.step {
		out = append(out, t)
	}
	return out
}

// shown is an expression as evaluated: without the $job and $namespace matchers, which select the
// one server, and with $__rate_interval replaced by the window.
func shown(expr string, window int64) string {
	expr = strings.ReplaceAll(expr, `{job=~"$job", namespace=~"$namespace"}`, "")
	return strings.ReplaceAll(expr, "$__rate_interval", fmt.Sprintf("%ds", window/1000))
}

// legend fills a legend format's {{label}}s.
func legend(format string, labels map[string]string) string {
	out := format
	for k, v := range labels {
		out = strings.ReplaceAll(out, "{{"+k+"}}", v)
	}
	return out
}

// lineBuilder gathers the values of lines named as they appear, one slot per evaluation time.
type lineBuilder struct {
	times []int64
	order []string
	byKey map[string][]float64
}

func newLines(ev evaluation) *lineBuilder {
	return &lineBuilder{times: ev.times(), byKey: map[string][]float64{}}
}

func (b *lineBuilder) set(name string, i int, v float64) {
	ys := b.byKey[name]
	if ys == nil {
		ys = make([]float64, len(b.times))
		for j := range ys {
			ys[j] = math.NaN()
		}
		b.byKey[name] = ys
		b.order = append(b.order, name)
	}
	ys[i] = v
}

// lines returns the lines ordered by name.
func (b *lineBuilder) lines() []line {
	names := slices.Sorted(slices.Values(b.order))
	out := make([]line, 0, len(names))
	for _, n := range names {
		l := line{Name: n}
		for i, t := range b.times {
			l.Points = append(l.Points, point{X: float64(t) / 1000, Y: b.byKey[n][i]})
		}
		out = append(out, l)
	}
	return out
}
