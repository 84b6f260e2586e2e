package main

import (
	"bytes"
	"image/png"
	"maps"
	"math"
	"slices"
	"testing"
)

// synthetic is a fixed recording: the counters and histograms of a made-up 20 s run, scraped every
// second for 28 s, with a burst in the middle and series appearing late.
func synthetic() *recording {
	rec := &recording{Interval: 1000, End: 28000, LoadFrom: 2000, LoadTo: 22000, Machine: "2 vCPUs",
		Load: []string{"150/s new pods", "200/s replicas from 7 s to 17 s"}}
	s := newStore()
	var injected, skipped, allowed float64
	buckets := map[string]float64{}
	for sec := int64(3); sec <= 28; sec++ {
		busy := sec > 2 && sec <= 22
		burst := sec > 7 && sec <= 17
		if busy {
			injected += 150 + float64(sec%3)
			skipped += 30
			allowed += 50
			buckets["0.0008"] += 80
			buckets["0.0016"] += 140
			buckets["0.0032"] += 148
			buckets["+Inf"] += 150
		}
		if burst {
			injected += 200
			buckets["0.0001"] += 200
			buckets["0.0008"] += 200
			buckets["0.0016"] += 200
			buckets["0.0032"] += 200
			buckets["+Inf"] += 200
		}
		t := sec * 1000
		s.add(admissionsMetric, map[string]string{"endpoint": "inject", "result": "injected", "variant": "sidecar", "reason": ""}, t, injected)
		s.add(admissionsMetric, map[string]string{"endpoint": "inject", "result": "skipped", "variant": "", "reason": "namespace_not_enabled"}, t, skipped)
		s.add(admissionsMetric, map[string]string{"endpoint": "validate", "result": "allowed", "variant": "", "reason": ""}, t, allowed)
		for _, le := range []string{"0.0001", "0.0008", "0.0016", "0.0032", "+Inf"} {
			s.add(latencyMetric, map[string]string{"endpoint": "inject", "le": le}, t, buckets[le])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.series)) {
		rec.Series = append(rec.Series, s.series[k])
	}
	return rec
}

func TestFigureIsDeterministic(t *testing.T) {
	first := figure(synthetic())
	if again := figure(synthetic()); !bytes.Equal(first, again) {
		t.Fatal("the same samples gave different bytes")
	}
	// The series in another order, and their label maps built anew: nothing may depend on the
	// order of a map or of the recording.
	shuffled := synthetic()
	slices.Reverse(shuffled.Series)
	for _, sr := range shuffled.Series {
		sr.Labels = maps.Clone(sr.Labels)
	}
	if got := figure(shuffled); !bytes.Equal(first, got) {
		t.Fatal("the same samples in another order gave different bytes")
	}
	// Other samples give another figure.
	changed := synthetic()
	changed.Series[0].Samples[10].V *= 2
	if got := figure(changed); bytes.Equal(first, got) {
		t.Fatal("other samples gave the same bytes")
	}

	img, err := png.Decode(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != figureWidth || b.Dy() < 2*panelHeight {
		t.Errorf("figure is %v, want %d wide and two panels high", b, figureWidth)
	}
	// Each panel's first line is drawn in the first colour, in the panel's plot.
	for i := range 2 {
		found := false
		for y := i*panelHeight + plotTop; y < (i+1)*panelHeight-plotBottom && !found; y++ {
			for x := plotLeft; x < figureWidth-plotRight; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				if c := palette[0]; uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B {
					found = true
					break
				}
			}
		}
		if !found {
			t.Errorf("panel %d: no pixel of its first line's colour in its plot", i)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ top, want float64 }{
		{360, 100}, {8.8e-3, 2e-3}, {1, 0.2}, {12, 2.5}, {0, 1}, {50, 10}, {0.06, 0.02},
	} {
		if got := niceStep(tc.top, 5); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.top, got, tc.want)
		}
	}
}
