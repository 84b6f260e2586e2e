// Command bench is the load harness: it starts rego-injector serve (pinned to one CPU when taskset
// is there), drives its /inject endpoint over HTTPS with keep-alive in open loop at fixed rates with
// vegeta (so that latency is not hidden by coordinated omission), and reports the achieved rate,
// errors, latency percentiles and the server's RSS. Traffic goes to 127.0.0.1 only, and every run is
// bounded in time.
//
//	go run ./test/bench -server bin/rego-injector -rates 250,500,1000 -duration 20s
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	server := flag.String("server", "bin/rego-injector", "the rego-injector binary to start")
	pods := flag.String("pods", "typical,large", "benchmark pods from engine/injector/testdata/bench")
	rates := flag.String("rates", "250,500,1000", "open-loop rates, requests per second")
	duration := flag.Duration("duration", 20*time.Second, "length of each run (at most 60s)")
	saturate := flag.Int("saturate", 4000, "rate of the saturation run, whose achieved throughput is reported (0: none)")
	cpu := flag.String("server-cpu", "0", "CPU the server is pinned to with taskset (empty: not pinned)")
	flag.Parse()
	if *duration > time.Minute {
		*duration = time.Minute
	}
	if err := run(*server, strings.Split(*pods, ","), parseRates(*rates), *duration, *saturate, *cpu); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseRates(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 && n <= 20000 {
			out = append(out, n)
		}
	}
	return out
}

func run(bin string, pods []string, rates []int, duration time.Duration, saturate int, cpu string) error {
	dir, err := os.MkdirTemp("", "rego-injector-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{bin, "serve", "--listen", addr, "--self-signed-dir", dir, "--log-level", "error"}
	if _, err := exec.LookPath("taskset"); err == nil && cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	tlsConfig, err := waitReady(dir, addr)
	if err != nil {
		return err
	}
	fmt.Printf("server: %s on %s, pinned to CPU %q; load generator: this process\n\n", bin, addr, cpu)
	fmt.Printf("idle RSS: %s\n\n", rss(cmd.Process.Pid))
	fmt.Println("| pod | rate (req/s) | achieved (req/s) | errors | p50 | p90 | p99 | max | RSS after |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, pod := range pods {
		body, err := review(pod)
		if err != nil {
			return err
		}
		runs := rates
		if saturate > 0 {
			runs = append(append([]int(nil), rates...), saturate)
		}
		for _, rate := range runs {
			m := attack(tlsConfig, "https://"+addr+"/inject", body, rate, duration)
			label := strconv.Itoa(rate)
			if rate == saturate {
				label += " (saturation)"
			}
			fmt.Printf("| %s | %s | %.0f | %d | %s | %s | %s | %s | %s |\n", pod, label, m.Throughput,
				m.Requests-uint64(float64(m.Requests)*m.Success), ms(m.Latencies.P50), ms(m.Latencies.P90), ms(m.Latencies.P99), ms(m.Latencies.Max),
				rss(cmd.Process.Pid))
		}
	}
	return nil
}

func waitReady(dir, addr string) (*tls.Config, error) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			if resp, err := c.Get("https://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return cfg, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, errors.New("the server did not become ready")
}

// review wraps a benchmark pod in an AdmissionReview; the pod opts in by label, as the server has
// no cluster to read namespace labels from.
func review(name string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join("engine", "injector", "testdata", "bench", name+".json"))
	if err != nil {
		return nil, err
	}
	var pod map[string]any
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, err
	}
	meta := pod["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels["sidecar.istio.io/inject"] = "true"
	meta["labels"] = labels
	return json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "bench", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": "shop", "operation": "CREATE", "userInfo": map[string]any{"username": "bench"},
			"object": pod,
		},
	})
}

// attack runs one open-loop run. A response counts as a success when it is HTTP 200 and carries a
// JSON patch.
func attack(cfg *tls.Config, url string, body []byte, rate int, d time.Duration) vegeta.Metrics {
	targeter := vegeta.NewStaticTargeter(vegeta.Target{
		Method: http.MethodPost, URL: url, Body: body,
		Header: http.Header{"Content-Type": []string{"application/json"}},
	})
	a := vegeta.NewAttacker(vegeta.TLSConfig(cfg), vegeta.KeepAlive(true), vegeta.MaxWorkers(200),
		vegeta.Timeout(10*time.Second), vegeta.HTTP2(false))
	var m vegeta.Metrics
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()
	for res := range a.Attack(targeter, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, "bench") {
		if res.Code == http.StatusOK && !strings.Contains(string(res.Body), `"patch"`) {
			res.Code, res.Error = 0, "no patch in the response"
		}
		m.Add(res)
		if ctx.Err() != nil {
			a.Stop()
		}
	}
	m.Close()
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "?"
}
