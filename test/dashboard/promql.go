package main

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// sample is one scraped value of a series, at t milliseconds after the first scrape.
type sample struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// series is one time series: its metric name, labels and samples in time order.
type series struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Samples []sample          `json:"samples"`
}

// key identifies a series: its name and labels sorted by name, as the exposition format writes them.
func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// store is what the scrapes gathered: every series of the metrics kept, by seriesKey.
type store struct {
	series map[string]*series
}

func newStore() *store { return &store{series: map[string]*series{}} }

// add appends a sample to the series of name and labels, creating it.
func (s *store) add(name string, labels map[string]string, t int64, v float64) {
	k := seriesKey(name, labels)
	sr := s.series[k]
	if sr == nil {
		sr = &series{Name: name, Labels: labels}
		s.series[k] = sr
	}
	sr.Samples = append(sr.Samples, sample{T: t, V: v})
}

// selectSeries returns the series of one metric name, ordered by key.
func (s *store) selectSeries(name string) []*series {
	var out []*series
	for _, k := range slices.Sorted(maps.Keys(s.series)) {
		if sr := s.series[k]; sr.Name == name {
			out = append(out, sr)
		}
	}
	return out
}

// element is one element of an instant vector.
type element struct {
	labels map[string]string
	v      float64
}

// rate is PromQL's rate(v[window]) at time t (milliseconds) over one series' samples, as Prometheus 3
// computes it (promql/functions.go, extrapolatedRate): the samples in the left-open window
// (t-window, t]; their increase, a drop counted as a counter reset; extrapolated towards each end of
// the window by the gap to it when that gap is below 1.1 times the average interval between the
// samples, else by half that interval, and never back past the point where the counter would have
// been zero; divided by the window in seconds. ok is false with fewer than two samples in the window.
func rate(samples []sample, t, window int64) (v float64, ok bool) {
	start, end := t-window, t
	lo := sort.Search(len(samples), func(i int) bool { return samples[i].T > start })
	hi := sort.Search(len(samples), func(i int) bool { return samples[i].T > end })
	in := samples[lo:hi]
	if len(in) < 2 {
		return 0, false
	}
	first, last := in[0], in[len(in)-1]
	increase := last.V - first.V
	previous := 0.0
	for _, s := range in {
		if s.V < previous {
			increase += previous
		}
		previous = s.V
	}
	sampled := float64(last.T-first.T) / 1000
	average := sampled / float64(len(in)-1)
	threshold := average * 1.1
	toStart := float64(first.T-start) / 1000
	toEnd := float64(end-last.T) / 1000
	if toStart >= threshold {
		toStart = average / 2
	}
	if increase > 0 && first.V >= 0 {
		if toZero := sampled * (first.V / increase); toZero < toStart {
			toStart = toZero
		}
	}
	if toEnd >= threshold {
		toEnd = average / 2
	}
	factor := (sampled + toStart + toEnd) / sampled / (float64(window) / 1000)
	return increase * factor, true
}

// rateVector is rate(name[window]) at t: one element per series with a value, labels kept.
func rateVector(ss []*series, t, window int64) []element {
	var out []element
	for _, s := range ss {
		if v, ok := rate(s.Samples, t, window); ok {
			out = append(out, element{labels: s.Labels, v: v})
		}
	}
	return out
}

// sumBy is PromQL's sum by (labels) (vector): the elements added up per value of the grouping
// labels, which are the only labels left; ordered by those values.
func sumBy(in []element, by ...string) []element {
	groups := map[string]*element{}
	for _, e := range in {
		kept := map[string]string{}
		for _, l := range by {
			if v := e.labels[l]; v != "" {
				kept[l] = v
			}
		}
		k := seriesKey("", kept)
		g := groups[k]
		if g == nil {
			g = &element{labels: kept}
			groups[k] = g
		}
		g.v += e.v
	}
	out := make([]element, 0, len(groups))
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, *groups[k])
	}
	return out
}

// bucket is one bucket of a classic histogram: its upper bound (le) and cumulative count.
type bucket struct {
	upper, count float64
}

// histogramQuantile is PromQL's histogram_quantile(q, vector) over classic histogram buckets: the
// elements are grouped by their labels other than le, and each group gives the q-quantile of its
// buckets (bucketQuantile), NaN included, as Prometheus returns it. Elements without a parseable le
// are ignored. Ordered by the group's labels.
func histogramQuantile(q float64, in []element) []element {
	type group struct {
		labels  map[string]string
		buckets []bucket
	}
	groups := map[string]*group{}
	for _, e := range in {
		le, ok := e.labels["le"]
		if !ok {
			continue
		}
		upper, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		rest := map[string]string{}
		for k, v := range e.labels {
			if k != "le" {
				rest[k] = v
			}
		}
		k := seriesKey("", rest)
		g := groups[k]
		if g == nil {
			g = &group{labels: rest}
			groups[k] = g
		}
		g.buckets = append(g.buckets, bucket{upper: upper, count: e.v})
	}
	var out []element
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		out = append(out, element{labels: g.labels, v: bucketQuantile(q, g.buckets)})
	}
	return out
}

// bucketQuantile is the q-quantile of classic histogram buckets as Prometheus computes it
// (promql/quantile.go, bucketQuantile): buckets sorted by upper bound, those of one bound merged,
// counts that differ by a relative 1e-12 or less made equal and any decrease flattened, so that they
// are cumulative; the rank q×total located in the first bucket whose count reaches it, and the value
// interpolated linearly between that bucket's lower and upper bounds (the lowest bucket starting at
// 0, unless its upper bound is 0 or less, which is then returned). A rank in the +Inf bucket gives
// the highest finite bound. NaN with no +Inf bucket, fewer than two buckets or no observations; -Inf
// for q < 0 and +Inf for q > 1.
func bucketQuantile(q float64, buckets []bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(+1)
	case len(buckets) == 0:
		return math.NaN()
	}
	b := slices.Clone(buckets)
	slices.SortStableFunc(b, func(x, y bucket) int { return cmp.Compare(x.upper, y.upper) })
	if !math.IsInf(b[len(b)-1].upper, +1) {
		return math.NaN()
	}
	merged := b[:1]
	for _, x := range b[1:] {
		if last := &merged[len(merged)-1]; x.upper == last.upper {
			last.count += x.count
		} else {
			merged = append(merged, x)
		}
	}
	b = merged
	// Float noise of summed rates must not make counts decrease: a count within a relative 1e-12
	// of the previous one takes its value.
	previous := b[0].count
	for i := 1; i < len(b); i++ {
		delta := math.Abs(b[i].count - previous)
		if delta == 0 {
			continue
		}
		if delta/b[i].count <= 1e-12 {
			b[i].count = previous
		} else {
			previous = b[i].count
		}
	}
	highest := b[0].count
	for i := 1; i < len(b); i++ {
		highest = max(highest, b[i].count)
		b[i].count = highest
	}
	if len(b) < 2 {
		return math.NaN()
	}
	total := b[len(b)-1].count
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(b)-1, func(i int) bool { return b[i].count >= rank })
	if i == len(b)-1 {
		return b[len(b)-2].upper
	}
	if i == 0 && b[0].upper <= 0 {
		return b[0].upper
	}
	lower, count := 0.0, b[i].count
	if i > 0 {
		lower = b[i-1].upper
		count -= b[i-1].count
		rank -= b[i-1].count
	}
	return lower + (b[i].upper-lower)*(rank/count)
}
