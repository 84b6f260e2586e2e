package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// close enough for values computed in a different order than by hand.
func near(got, want float64) bool {
	if math.IsNaN(want) || math.IsInf(want, 0) {
		return math.IsNaN(got) && math.IsNaN(want) || got == want
	}
	return math.Abs(got-want) <= 1e-12*max(1, math.Abs(want))
}

// The buckets of every case below but the special ones: 10 observations up to 1 ms, 20 more up to
// 2 ms, 5 more up to 4 ms, 5 more above, 40 in all.
var handBuckets = []bucket{{0.001, 10}, {0.002, 30}, {0.004, 35}, {math.Inf(+1), 40}}

func TestBucketQuantile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		// rank 0.5×40 = 20 falls in (1 ms, 2 ms], which holds ranks 10 to 30: 1 ms + 1 ms × 10/20.
		{"median", 0.5, handBuckets, 0.0015},
		// rank 4 in [0, 1 ms], which holds ranks 0 to 10: the lowest bucket starts at 0.
		{"in the lowest bucket", 0.1, handBuckets, 0.0004},
		// rank 10 is reached exactly by the first bucket: its upper bound.
		{"on a bound", 0.25, handBuckets, 0.001},
		// rank 32 in (2 ms, 4 ms], ranks 30 to 35: 2 ms + 2 ms × 2/5.
		{"p80", 0.8, handBuckets, 0.0028},
		// rank 36 is in the +Inf bucket: the highest finite bound.
		{"in the +Inf bucket", 0.9, handBuckets, 0.004},
		{"q = 1", 1, handBuckets, 0.004},
		{"q = 0", 0, handBuckets, 0},
		// Order does not matter; buckets of the same bound (1e-3 and 0.001 summed by le) merge.
		{"unsorted and split", 0.5, []bucket{{math.Inf(+1), 40}, {0.002, 30}, {0.001, 4}, {0.004, 35}, {0.001, 6}}, 0.0015},
		// A decrease is flattened: (1 ms, 2 ms] counts as empty, so rank 10 is 1 ms.
		{"not monotonic", 0.5, []bucket{{0.001, 10}, {0.002, 8}, {math.Inf(+1), 20}}, 0.001},
		// A count above the previous one by a relative 1e-12 or less is float noise and equals it:
		// rank 10 + 5e-14 is then past (1 ms, 2 ms] and at the very start of (2 ms, 4 ms], not
		// halfway through (1 ms, 2 ms] (1.5 ms).
		{"float noise", (10 + 5e-14) / 20, []bucket{{0.001, 10}, {0.002, 10 + 1e-13}, {0.004, 20}, {math.Inf(+1), 20}}, 0.002},
		// A lowest bound at or below 0 is returned as it is.
		{"non-positive lowest bound", 0.2, []bucket{{-1, 5}, {0, 10}, {math.Inf(+1), 10}}, -1},
		// Counts are rates here, not integers: 2.5/s up to 1 ms, 7.5/s in all; rank 3.75 in
		// (1 ms, 2 ms], ranks 2.5 to 5: 1 ms + 1 ms × 1.25/2.5.
		{"rates", 0.5, []bucket{{0.001, 2.5}, {0.002, 5}, {math.Inf(+1), 7.5}}, 0.0015},
		{"no observations", 0.5, []bucket{{0.001, 0}, {math.Inf(+1), 0}}, math.NaN()},
		{"no +Inf bucket", 0.5, []bucket{{0.001, 10}, {0.002, 20}}, math.NaN()},
		{"only the +Inf bucket", 0.5, []bucket{{math.Inf(+1), 10}}, math.NaN()},
		{"no buckets", 0.5, nil, math.NaN()},
		{"q below 0", -0.1, handBuckets, math.Inf(-1)},
		{"q above 1", 1.1, handBuckets, math.Inf(+1)},
		{"q NaN", math.NaN(), handBuckets, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bucketQuantile(tc.q, tc.buckets); !near(got, tc.want) {
				t.Errorf("bucketQuantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestBucketQuantileLeavesItsInputAlone(t *testing.T) {
	in := []bucket{{math.Inf(+1), 40}, {0.001, 10}}
	bucketQuantile(0.5, in)
	if in[0].upper != math.Inf(+1) || in[1].count != 10 {
		t.Errorf("input changed: %v", in)
	}
}

func TestHistogramQuantileGroupsByLabelsOtherThanLe(t *testing.T) {
	el := func(endpoint, le string, v float64) element {
		labels := map[string]string{"endpoint": endpoint}
		if le != "" {
			labels["le"] = le
		}
		return element{labels: labels, v: v}
	}
	in := []element{
		el("validate", "+Inf", 8), el("inject", "0.001", 10), el("inject", "0.002", 30), el("inject", "0.004", 35),
		el("inject", "+Inf", 40), el("validate", "1e-3", 2), el("validate", "0.001", 2), el("inject", "", 1000),
		el("inject", "not a number", 1000),
	}
	got := histogramQuantile(0.5, in)
	if len(got) != 2 {
		t.Fatalf("got %d elements, want 2: %v", len(got), got)
	}
	// inject: the median of handBuckets. validate: rank 4 reached by its first bucket, 1e-3 and
	// 0.001 merged.
	for i, want := range []struct {
		endpoint string
		v        float64
	}{{"inject", 0.0015}, {"validate", 0.001}} {
		if got[i].labels["endpoint"] != want.endpoint || len(got[i].labels) != 1 || !near(got[i].v, want.v) {
			t.Errorf("element %d = %v %v, want endpoint=%s %v", i, got[i].labels, got[i].v, want.endpoint, want.v)
		}
	}
}

// at makes samples at the given seconds.
func at(pairs ...float64) []sample {
	var out []sample
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, sample{T: int64(pairs[i] * 1000), V: pairs[i+1]})
	}
	return out
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []sample
		t       float64 // seconds
		want    float64
		ok      bool
	}{
		// (0 s, 4 s] holds 1..4 s: 300 over 3 s, extrapolated by 1 s to the start (below 1.1 × the
		// 1 s interval) and 0 to the end: 300 × 4/3 / 4 s. The sample at 0 s is outside: the
		// window is open on the left (with it, 350 over 4 s would give 87.5).
		{"steady", at(0, 50, 1, 100, 2, 200, 3, 300, 4, 400), 4, 100, true},
		// A drop is a reset: 200 - 100 + 150 - 0 after it, plus the 200 before it = 250 over 3 s,
		// extrapolated to 4 s: 250 × 4/3 / 4.
		{"reset", at(1, 100, 2, 200, 3, 50, 4, 150), 4, 250.0 / 3, true},
		// A series born at 3 s: 100 over 1 s. The start is 3 s away, past 1.1 × 1 s, so half an
		// interval (0.5 s), cut to 0.1 s where the counter would have been 0 (10/100 of 1 s):
		// 100 × 1.1 / 4.
		{"new series", at(3, 10, 4, 110), 4, 27.5, true},
		// The last sample is 2 s before the end, past the threshold: half an interval there.
		// 100 × (1 + 1 + 0.5) / 4.
		{"ended series", at(1, 100, 2, 200), 4, 62.5, true},
		// A counter that does not move.
		{"idle", at(1, 7, 2, 7, 3, 7, 4, 7), 4, 0, true},
		{"one sample", at(4, 100), 4, 0, false},
		{"none in the window", at(0, 1, 0.5, 2), 4.5, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rate(tc.samples, int64(tc.t*1000), 4000)
			if ok != tc.ok || ok && !near(got, tc.want) {
				t.Errorf("rate = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSumBy(t *testing.T) {
	in := []element{
		{map[string]string{"endpoint": "inject", "result": "injected", "variant": "a"}, 1},
		{map[string]string{"endpoint": "inject", "result": "injected", "variant": "b"}, 2},
		{map[string]string{"endpoint": "validate", "result": "allowed", "variant": ""}, 4},
		{map[string]string{"endpoint": "inject", "result": "skipped", "reason": "opted_out"}, 8},
	}
	got := sumBy(in, "endpoint", "result")
	want := []string{`{endpoint="inject",result="injected"}=3`, `{endpoint="inject",result="skipped"}=8`, `{endpoint="validate",result="allowed"}=4`}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i, e := range got {
		if s := fmt.Sprintf("%s=%v", seriesKey("", e.labels), e.v); s != want[i] {
			t.Errorf("element %d = %s, want %s", i, s, want[i])
		}
	}
}

// steadyStore has the two metrics of the panels counting steadily from 0 s to 10 s, one sample a
// second: inject injected at 100/s (variants a and b at 60/s and 40/s) and validate allowed at
// 20/s; inject's histogram with 50/s up to 1 ms, 30/s more up to 2 ms and 20/s above, validate's
// with all 20/s up to 1 ms.
func steadyStore() *store {
	s := newStore()
	for sec := int64(0); sec <= 10; sec++ {
		t, n := sec*1000, float64(sec)
		s.add(admissionsMetric, map[string]string{"endpoint": "inject", "result": "injected", "variant": "a", "reason": ""}, t, 60*n)
		s.add(admissionsMetric, map[string]string{"endpoint": "inject", "result": "injected", "variant": "b", "reason": ""}, t, 40*n)
		s.add(admissionsMetric, map[string]string{"endpoint": "validate", "result": "allowed", "variant": "", "reason": ""}, t, 20*n)
		for _, b := range []struct {
			endpoint, le string
			perSecond    float64
		}{{"inject", "0.001", 50}, {"inject", "0.002", 80}, {"inject", "+Inf", 100}, {"validate", "0.001", 20}, {"validate", "0.002", 20}, {"validate", "+Inf", 20}} {
			s.add(latencyMetric, map[string]string{"endpoint": b.endpoint, "le": b.le}, t, b.perSecond*n)
		}
	}
	return s
}

func TestPanels(t *testing.T) {
	ev := evaluation{end: 10000, step: 1000, window: 4000}
	admissions := admissionsPanel(steadyStore(), ev)
	latency := latencyPanel(steadyStore(), ev)
	values := func(p panel) map[string]float64 { // each line's value at 6 s
		out := map[string]float64{}
		for _, l := range p.Lines {
			out[l.Name] = l.Points[6].Y
		}
		return out
	}
	// At 6 s the window (2 s, 6 s] holds four steady samples: the rates exactly.
	for name, want := range map[string]float64{"inject injected": 100, "validate allowed": 20} {
		if got := values(admissions)[name]; !near(got, want) {
			t.Errorf("admissions %q = %v, want %v", name, got, want)
		}
	}
	// inject: p50, rank 50 of 100, reached by the first bucket: 1 ms; p90 and p99 in the +Inf
	// bucket: 2 ms. validate: rank 10 of 20 in [0, 1 ms]: 0.5 ms; rank 18 and 19.8: 0.9 and 0.99 ms.
	for name, want := range map[string]float64{"p50 inject": 0.001, "p90 inject": 0.002, "p99 inject": 0.002,
		"p50 validate": 0.0005, "p90 validate": 0.0009, "p99 validate": 0.00099} {
		if got := values(latency)[name]; !near(got, want) {
			t.Errorf("latency %q = %v, want %v", name, got, want)
		}
	}
	// At 0 s there is one sample: no value, a gap.
	for _, p := range []panel{admissions, latency} {
		for _, l := range p.Lines {
			if !math.IsNaN(l.Points[0].Y) {
				t.Errorf("%s %q at 0 s = %v, want none", p.Title, l.Name, l.Points[0].Y)
			}
		}
	}
	var names []string
	for _, l := range latency.Lines {
		names = append(names, l.Name)
	}
	if fmt.Sprint(names) != "[p50 inject p50 validate p90 inject p90 validate p99 inject p99 validate]" {
		t.Errorf("latency lines in the order %v, want the queries' order, then the endpoints'", names)
	}
}

// TestPanelsAreTheDashboards checks that the queries computed here are the dashboard's own.
func TestPanelsAreTheDashboards(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/rego-injector-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatal(err)
	}
	type target struct{ expr, legend string }
	want := map[string][]target{admissionsTitle: {{admissionsExpr, admissionsLegend}}}
	for _, lq := range latencyQuantiles {
		want[latencyTitle] = append(want[latencyTitle], target{fmt.Sprintf(latencyExpr, lq.q), fmt.Sprintf(latencyLegend, lq.p)})
	}
	for _, p := range dashboard.Panels {
		w, ok := want[p.Title]
		if !ok {
			continue
		}
		delete(want, p.Title)
		if len(p.Targets) != len(w) {
			t.Errorf("panel %q has %d queries, want %d", p.Title, len(p.Targets), len(w))
			continue
		}
		for i, tg := range p.Targets {
			if tg.Expr != w[i].expr || tg.LegendFormat != w[i].legend {
				t.Errorf("panel %q, query %d:\n got %s (legend %s)\nwant %s (legend %s)", p.Title, i, tg.Expr, tg.LegendFormat, w[i].expr, w[i].legend)
			}
		}
	}
	for title := range want {
		t.Errorf("the dashboard has no panel %q", title)
	}
}
