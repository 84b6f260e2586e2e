package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// seqLabel numbers the pods of a stream of distinct pods; seqZero is its value in the review as
// built, and keeps the review's length whatever the number (as test/bench does).
const (
	seqLabel = "dashboard.rego-injector.io/seq"
	seqZero  = "0000000000"
)

// stream is one kind of traffic of the run: a benchmark pod posted to an endpoint at a fixed rate,
// from one offset of the run to another.
type stream struct {
	name     string
	path     string // /inject or /validate
	pod      string // a pod of engine/injector/testdata/bench
	optIn    bool   // the pod carries sidecar.istio.io/inject=true (without a cluster, no namespace opts in)
	distinct bool   // every pod differs by seqLabel, so no answer can be reused
	rate     int    // per second
	from, to time.Duration
}

// streams is the mixed load: new pods all along, the replicas of one workload (the same pod again
// and again, answered from the memo) through the middle half, pods that do not opt in, which are
// skipped, and validations.
func streams(d time.Duration) []stream {
	return []stream{
		{name: "new typical pods", path: "/inject", pod: "typical", optIn: true, distinct: true, rate: 150, to: d},
		{name: "new large pods", path: "/inject", pod: "large", optIn: true, distinct: true, rate: 10, to: d},
		{name: "one workload's replicas", path: "/inject", pod: "typical", optIn: true, rate: 200, from: d / 4, to: d * 3 / 4},
		{name: "pods not opting in", path: "/inject", pod: "small", distinct: true, rate: 30, to: d},
		{name: "validations", path: "/validate", pod: "typical", optIn: true, distinct: true, rate: 50, to: d},
	}
}

// review wraps a benchmark pod in an AdmissionReview for a CREATE in namespace shop.
func review(pod string, optIn bool) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join("engine", "injector", "testdata", "bench", pod+".json"))
	if err != nil {
		return nil, err
	}
	var object map[string]any
	if err := json.Unmarshal(raw, &object); err != nil {
		return nil, err
	}
	meta := object["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	if optIn {
		labels["sidecar.istio.io/inject"] = "true"
	}
	labels[seqLabel] = seqZero
	meta["labels"] = labels
	return json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "dashboard", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": "shop", "operation": "CREATE", "userInfo": map[string]any{"username": "dashboard"},
			"object": object,
		},
	})
}

// targeter posts body, the same each time or, when distinct, with seqLabel numbered.
func targeter(url string, body []byte, distinct bool) vegeta.Targeter {
	header := http.Header{"Content-Type": []string{"application/json"}}
	if !distinct {
		return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: url, Body: body, Header: header})
	}
	at := bytes.Index(body, []byte(`"`+seqLabel+`":"`+seqZero+`"`)) + len(seqLabel) + 4
	var seq atomic.Uint64
	return func(t *vegeta.Target) error {
		b := bytes.Clone(body)
		copy(b[at:at+len(seqZero)], fmt.Sprintf("%010d", seq.Add(1)))
		*t = vegeta.Target{Method: http.MethodPost, URL: url, Body: b, Header: header}
		return nil
	}
}

// outcome counts the answers of one stream.
type outcome struct {
	name          string
	sent, failed  uint64
	firstFailure  string
	latencies     vegeta.LatencyMetrics
	achievedRate  float64
	requestedRate int
}

// drive runs one stream in open loop against base, starting at start+s.from. It stops by itself.
func drive(ctx context.Context, cfg *tls.Config, base string, start time.Time, s stream) (outcome, error) {
	body, err := review(s.pod, s.optIn)
	if err != nil {
		return outcome{}, err
	}
	out := outcome{name: s.name, requestedRate: s.rate}
	select {
	case <-ctx.Done():
		return out, ctx.Err()
	case <-time.After(time.Until(start.Add(s.from))):
	}
	a := vegeta.NewAttacker(vegeta.TLSConfig(cfg), vegeta.KeepAlive(true), vegeta.MaxWorkers(100),
		vegeta.Timeout(10*time.Second), vegeta.HTTP2(false))
	var m vegeta.Metrics
	for res := range a.Attack(targeter(base+s.path, body, s.distinct), vegeta.ConstantPacer{Freq: s.rate, Per: time.Second}, s.to-s.from, s.name) {
		m.Add(res)
		out.sent++
		if res.Code != http.StatusOK {
			out.failed++
			if out.firstFailure == "" {
				out.firstFailure = fmt.Sprintf("HTTP %d %s", res.Code, res.Error)
			}
		}
		if ctx.Err() != nil {
			a.Stop()
		}
	}
	m.Close()
	out.latencies, out.achievedRate = m.Latencies, m.Rate
	return out, nil
}
