// Command dashboard draws what two panels of the Grafana dashboard
// (deploy/grafana/rego-injector-dashboard.json) show during a short local load run, into a PNG for
// docs/observability.md: "Admissions by endpoint and result" and "Admission latency percentiles".
//
// It starts rego-injector serve on 127.0.0.1 with its self-signed certificate, drives a mixed
// open-loop load with vegeta for -duration (at most 30 s), and scrapes /metrics every second
// meanwhile, as Prometheus would. It then evaluates the two panels' PromQL itself over the scrapes
// (rate() and histogram_quantile as Prometheus computes them, promql.go) at every second, as Grafana
// would ask Prometheus, and draws the results as line charts (chart.go). The drawing depends on the
// recorded samples alone: -samples keeps them, and -replay draws them again to the same bytes.
//
//	go run ./test/dashboard -server bin/rego-injector -o docs/images/dashboard-admissions.png
//
// Traffic goes to 127.0.0.1 only, and the run stops by itself.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// scrapeInterval is the interval of the scrapes and the step of the evaluation.
	scrapeInterval = time.Second
	// rateWindow is $__rate_interval as Grafana sets it for that scrape interval and a step of one
	// scrape interval: max(4 × scrape interval, step + scrape interval).
	rateWindow = 4 * scrapeInterval
	// lead and tail are scraped before the load starts and after it ends.
	lead, tail = 2 * time.Second, 6 * time.Second
)

func main() {
	server := flag.String("server", "bin/rego-injector", "the rego-injector binary")
	out := flag.String("o", "docs/images/dashboard-admissions.png", "the PNG to write")
	duration := flag.Duration("duration", 20*time.Second, "length of the load (at most 30s)")
	cpu := flag.String("server-cpu", "0", "CPU the server is pinned to with taskset (empty: not pinned)")
	samples := flag.String("samples", "", "also write the scraped samples to this file (JSON), for -replay")
	replay := flag.String("replay", "", "draw the samples of this file, written by -samples, instead of running the load")
	flag.Parse()
	var err error
	if *replay != "" {
		err = drawReplay(*replay, *out)
	} else {
		err = run(*server, *out, *samples, *cpu, min(*duration, 30*time.Second))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// recording is what a run gathered: enough to draw the figure again.
type recording struct {
	// Times in milliseconds after the first scrape.
	Interval int64 `json:"intervalMs"`
	End      int64 `json:"endMs"`
	LoadFrom int64 `json:"loadFromMs"`
	LoadTo   int64 `json:"loadToMs"`
	// Machine says where the run took place: vCPUs, and the server's CPU when pinned.
	Machine string `json:"machine"`
	// Load describes the streams of the load, one line each.
	Load   []string  `json:"load"`
	Series []*series `json:"series"`
}

// figure evaluates the two panels over a recording and draws them.
func figure(rec *recording) []byte {
	s := newStore()
	for _, sr := range rec.Series {
		for _, smp := range sr.Samples {
			s.add(sr.Name, sr.Labels, smp.T, smp.V)
		}
	}
	ev := evaluation{end: rec.End, step: rec.Interval, window: rec.Interval * int64(rateWindow/scrapeInterval)}
	panels := []panel{admissionsPanel(s, ev), latencyPanel(s, ev)}
	notes := []string{
		fmt.Sprintf("Load from %s to %s (vegeta, open loop, HTTPS with keep-alive, to 127.0.0.1 on %s): %s.",
			seconds(rec.LoadFrom), seconds(rec.LoadTo), rec.Machine, strings.Join(rec.Load, ", ")),
		fmt.Sprintf("Queries evaluated every %s over scrapes of /metrics every %s, as Prometheus does; $__rate_interval is %s, as Grafana sets it for that scrape interval.",
			seconds(ev.step), seconds(rec.Interval), seconds(ev.window)),
	}
	var b bytes.Buffer
	if err := writePNG(&b, render(panels, notes)); err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	return b.Bytes()
}

func seconds(ms int64) string { return formatTick(float64(ms)/1000) + " s" }

func drawReplay(from, out string) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var rec recording
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return writeFile(out, figure(&rec))
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

func run(server, out, samplesFile, cpu string, d time.Duration) error {
	dir, err := os.MkdirTemp("", "rego-injector-dashboard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{server, "serve", "--listen", addr, "--self-signed-dir", dir, "--log-level", "error"}
	machine := fmt.Sprintf("%d vCPUs", onlineCPUs())
	if _, err := exec.LookPath("taskset"); err == nil && cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
		machine += ", the server pinned to CPU " + cpu
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", server, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "https://" + addr
	cfg, err := waitReady(filepath.Join(dir, "ca.crt"), base+"/readyz")
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), lead+d+tail+30*time.Second)
	defer cancel()
	start := time.Now().Add(200 * time.Millisecond)
	end := lead + d + tail
	sc := &scraper{
		client:   &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}},
		url:      base + "/metrics",
		interval: scrapeInterval,
		keep:     map[string]bool{admissionsMetric: true, latencyMetric: true},
		store:    newStore(),
	}
	scraped := make(chan struct{})
	go func() { sc.run(ctx, start, end); close(scraped) }()

	load := streams(d)
	outcomes := make([]outcome, len(load))
	errs := make([]error, len(load))
	var wg sync.WaitGroup
	for i, s := range load {
		wg.Go(func() { outcomes[i], errs[i] = drive(ctx, cfg, base, start.Add(lead), s) })
	}
	wg.Wait()
	<-scraped
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var failed uint64
	fmt.Println("| stream | requested (req/s) | achieved (req/s) | sent | failed | p50 | p99 |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, o := range outcomes {
		fmt.Printf("| %s | %d | %.0f | %d | %d | %.2f ms | %.2f ms |\n", o.name, o.requestedRate, o.achievedRate, o.sent, o.failed,
			float64(o.latencies.P50.Microseconds())/1000, float64(o.latencies.P99.Microseconds())/1000)
		if o.failed > 0 {
			fmt.Printf("  first failure of %s: %s\n", o.name, o.firstFailure)
		}
		failed += o.failed
	}
	fmt.Printf("scrapes: %d failed of %d\n", sc.failed, int(end/scrapeInterval)+1)

	rec := &recording{
		Interval: scrapeInterval.Milliseconds(), End: end.Milliseconds(),
		LoadFrom: lead.Milliseconds(), LoadTo: (lead + d).Milliseconds(), Machine: machine,
	}
	for _, s := range load {
		rec.Load = append(rec.Load, s.describe(d))
	}
	for _, k := range slices.Sorted(maps.Keys(sc.store.series)) {
		rec.Series = append(rec.Series, sc.store.series[k])
	}
	if samplesFile != "" {
		raw, err := json.MarshalIndent(rec, "", " ")
		if err != nil {
			return err
		}
		if err := writeFile(samplesFile, append(raw, '\n')); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d admissions failed: no figure drawn", failed)
	case sc.failed > 2:
		return fmt.Errorf("%d scrapes failed: no figure drawn", sc.failed)
	}
	return writeFile(out, figure(rec))
}

// describe says what a stream of a load of length d sends, with its times counted from the first
// scrape when it does not last the whole load.
func (s stream) describe(d time.Duration) string {
	what := fmt.Sprintf("%d/s %s", s.rate, s.name)
	if s.from != 0 || s.to != d {
		what += fmt.Sprintf(" from %s to %s", seconds((lead + s.from).Milliseconds()), seconds((lead + s.to).Milliseconds()))
	}
	return what
}

// onlineCPUs counts the machine's CPUs, whatever this process is pinned to (runtime.NumCPU counts
// only those it may run on).
func onlineCPUs() int {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "processor") {
			n++
		}
	}
	return max(n, 1)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady waits for serve to write its self-signed CA to caFile and to answer url with 200, and
// returns a client configuration trusting that CA.
func waitReady(caFile, url string) (*tls.Config, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			continue
		}
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cfg, nil
			}
		}
	}
	return nil, errors.New("rego-injector serve not ready after 30 s")
}
