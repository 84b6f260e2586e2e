// Command bench is the load harness. It runs two servers in turn, each pinned to one CPU when
// taskset is there, with the same certificate: rego-injector serve, and OPA's own server answering
// the same AdmissionReview with the same default policies and the sidecar built in Rego
// (test/bench/opa). It first checks that both patches give the same pod, then drives each over
// HTTPS with keep-alive in open loop at fixed rates with vegeta (so that latency is not hidden by
// coordinated omission), and reports the achieved rate, errors, latency percentiles and the
// server's RSS. Traffic goes to 127.0.0.1 only, and every run is bounded in time.
//
//	go run ./test/bench -server bin/rego-injector -opa bin/opa -rates 250,500,1000 -duration 20s
//
// With -soak it runs rego-injector alone for minutes, swapping its bundle and rotating its
// certificate halfway (soak.go). With -faults it runs rego-injector alone under steady load and
// injects faults one after another: its bundle server hangs, then serves garbage; the
// kube-apiserver it reads namespaces from is stopped; its serving certificate is replaced; it gets
// SIGTERM (faults.go). With -revisions it serves two named revisions with tags from a real
// kube-apiserver, under load in namespaces on each, and moves a tag and swaps a bundle in the
// middle, timing how soon the answers follow (revisions.go).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	evanphx "gopkg.in/evanphx/json-patch.v4"

	"github.com/rego-injector/rego-injector/engine/certs"
)

func main() {
	server := flag.String("server", "bin/rego-injector", "the rego-injector binary")
	opa := flag.String("opa", "", "the opa binary, to measure OPA's server beside it (empty: only rego-injector)")
	pods := flag.String("pods", "typical,large", "benchmark pods from engine/injector/testdata/bench")
	rates := flag.String("rates", "250,500,1000", "open-loop rates, requests per second")
	duration := flag.Duration("duration", 20*time.Second, "length of each run (at most 60s)")
	saturate := flag.Int("saturate", 4000, "rate of the saturation run, whose achieved throughput is reported (0: none)")
	cpu := flag.String("server-cpu", "0", "CPU the servers are pinned to with taskset (empty: not pinned)")
	modes := flag.String("mode", "same,distinct,mixed", "same: every request carries the same pod (the replicas of one workload); distinct: every pod differs (a label numbers it), so no answer can be reused; mixed: a rollout of many workloads of -replicas pods each, every -large-every'th workload of large pods and the rest typical (the -pods list is ignored; run once per server and rate, at most 1,000 req/s)")
	replicas := flag.Int("replicas", 4, "pods of each workload in a mixed run")
	largeEvery := flag.Int("large-every", 5, "in a mixed run, every this many workloads one is of large pods")
	soakFor := flag.Duration("soak", 0, "instead of the comparison, run rego-injector alone this long (at most 15m) at -soak-rate distinct pods per second, swapping its bundle and rotating its certificate halfway, sampling RSS")
	soakRate := flag.Int("soak-rate", 200, "requests per second of the soak")
	faultRun := flag.Bool("faults", false, "instead of the comparison, run rego-injector alone under steady load and inject faults one after another: its bundle server hangs then serves garbage, the apiserver is stopped, the serving certificate is replaced, SIGTERM; fail on a failed admission the documented behaviour does not predict")
	faultRate := flag.Int("fault-rate", 150, "distinct pods per second of the fault run over kept-alive connections (a tenth more, at least 5, each on a new connection)")
	faultWindow := flag.Duration("fault-window", 15*time.Second, "how long each fault of the fault run lasts (5s to 30s)")
	shutdownDelay := flag.Duration("shutdown-delay", 5*time.Second, "serve's --shutdown-delay in the fault run (the Deployment sets 5s)")
	clusterBin := flag.String("cluster-bin", os.Getenv("REGO_INJECTOR_CLUSTER_BIN"), "directory of the etcd and kube-apiserver binaries for the fault and revisions runs (test/tools/cluster-binaries.sh prints it); without them the apiserver fault is skipped, and the revisions run fails")
	faultOnly := flag.String("fault-only", "", "comma-separated faults of the fault run to inject, of bundle, apiserver, cert, sigterm (empty: all)")
	revisionRun := flag.Bool("revisions", false, "instead of the comparison, serve revisions 1-31 and 1-32 with tags prod and canary from a kube-apiserver (-cluster-bin) under -rate distinct pods per second for -duration (20s to 60s) in namespaces on prod, canary and 1-31; a third of the way in move prod to 1-32, 5 s later swap 1-31's bundle; fail on a failed admission or a change never seen")
	rate := flag.Int("rate", 250, "requests per second of the revisions run, the namespaces together")
	flag.Parse()
	*duration = min(*duration, time.Minute)
	var err error
	switch {
	case *revisionRun:
		err = revisionsRun(revisionsConfig{server: *server, rate: min(max(*rate, 3), 2000), duration: max(*duration, 20*time.Second),
			clusterBin: *clusterBin, cpu: *cpu})
	case *faultRun:
		err = faults(faultConfig{server: *server, rate: min(max(*faultRate, 1), 2000), window: min(max(*faultWindow, 5*time.Second), 30*time.Second),
			shutdownDelay: min(*shutdownDelay, 30*time.Second), clusterBin: *clusterBin, cpu: *cpu, only: splitList(*faultOnly)})
	case *soakFor > 0:
		err = soak(*server, min(*soakFor, 15*time.Minute), *soakRate, *cpu)
	default:
		err = run(*server, *opa, strings.Split(*pods, ","), strings.Split(*modes, ","), parseRates(*rates), *duration, *saturate, *cpu,
			mixConfig{replicas: min(max(*replicas, 1), 100), largeEvery: max(*largeEvery, 1)})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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

// peer is one server under test.
type peer struct {
	name string
	args func(addr, cert, key string) []string
	// path is where admission reviews are posted; ready is the readiness probe.
	path, ready string
}

// mixConfig shapes a mixed run.
type mixConfig struct{ replicas, largeEvery int }

func run(server, opa string, pods, modes []string, rates []int, duration time.Duration, saturate int, cpu string, mix mixConfig) error {
	dir, err := os.MkdirTemp("", "rego-injector-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tlsConfig, cert, key, err := serving(dir)
	if err != nil {
		return err
	}
	peers := []peer{{
		name: "rego-injector", path: "/inject", ready: "/readyz",
		args: func(addr, cert, key string) []string {
			return []string{server, "serve", "--listen", addr, "--tls-cert-file", cert, "--tls-key-file", key, "--log-level", "error"}
		},
	}}
	if opa != "" {
		peers = append(peers, peer{
			name: "opa run --server", path: "/", ready: "/health",
			args: func(addr, cert, key string) []string {
				return []string{opa, "run", "--server", "--addr", addr, "--tls-cert-file", cert, "--tls-private-key-file", key,
					"--log-level", "error", "--set", "default_decision=bench/admission/review",
					filepath.Join("build", "bundle-default"), filepath.Join("test", "bench", "opa")}
			},
		})
	}
	reviews := map[string][]byte{}
	for _, pod := range append(slices.Clone(pods), "typical", "large") {
		if reviews[pod], err = review(pod); err != nil {
			return err
		}
	}

	patches := map[string]map[string][]byte{} // peer → pod → patch, for the equivalence check
	var report strings.Builder
	fmt.Fprintln(&report, "| server | pod | pods | rate (req/s) | achieved (req/s) | errors | of them shed (429) | p50 | p90 | p99 | max | RSS after |")
	fmt.Fprintln(&report, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	row := func(server, pod, mode, label string, m vegeta.Metrics, pid int) {
		fmt.Fprintf(&report, "| %s | %s | %s | %s | %.0f | %d | %d | %s | %s | %s | %s | %s |\n", server, pod, mode, label, m.Throughput,
			m.Requests-uint64(float64(m.Requests)*m.Success+0.5), m.StatusCodes["429"], ms(m.Latencies.P50), ms(m.Latencies.P90), ms(m.Latencies.P99), ms(m.Latencies.Max),
			rss(pid))
	}
	for _, p := range peers {
		err := func() error {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			args := p.args(addr, cert, key)
			if _, err := exec.LookPath("taskset"); err == nil && cpu != "" {
				args = append([]string{"taskset", "-c", cpu}, args...)
			}
			cmd := exec.Command(args[0], args[1:]...)
			// Both servers collect garbage alike: rego-injector's default, which OPA's server gains
			// from as well.
			cmd.Env = append(os.Environ(), "GOGC=400")
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			base := "https://" + addr
			if err := waitReady(tlsConfig, base+p.ready); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			fmt.Printf("%s: idle RSS %s\n", p.name, rss(cmd.Process.Pid))
			patches[p.name] = map[string][]byte{}
			for _, pod := range pods {
				if patches[p.name][pod], err = onePatch(tlsConfig, base+p.path, reviews[pod]); err != nil {
					return fmt.Errorf("%s, %s pod: %w", p.name, pod, err)
				}
				runs := rates
				if saturate > 0 {
					runs = append(append([]int(nil), rates...), saturate)
				}
				for _, mode := range modes {
					if mode == "mixed" {
						continue
					}
					for _, rate := range runs {
						m := attack(tlsConfig, targets(base+p.path, reviews[pod], mode == "distinct"), rate, duration)
						label := strconv.Itoa(rate)
						if rate == saturate {
							label += " (saturation)"
						}
						row(p.name, pod, mode, label, m, cmd.Process.Pid)
					}
				}
			}
			if slices.Contains(modes, "mixed") {
				for _, rate := range rates {
					m := attack(tlsConfig, mixed(base+p.path, reviews["typical"], reviews["large"], mix), min(rate, 1000), duration)
					row(p.name, fmt.Sprintf("typical, every %d%s workload large", mix.largeEvery, ordinal(mix.largeEvery)),
						fmt.Sprintf("mixed: %d per workload", mix.replicas), strconv.Itoa(min(rate, 1000)), m, cmd.Process.Pid)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	if opa != "" {
		for _, pod := range pods {
			if err := equivalent(reviews[pod], patches[peers[0].name][pod], patches[peers[1].name][pod]); err != nil {
				return fmt.Errorf("%s pod: the two servers' patches differ, so their figures do not compare: %w", pod, err)
			}
			fmt.Printf("%s pod: both patches give the same pod\n", pod)
		}
	}
	fmt.Println()
	fmt.Print(report.String())
	return nil
}

// serving makes a CA and a certificate for 127.0.0.1, written to dir, and a client configuration
// that trusts it.
func serving(dir string) (*tls.Config, string, string, error) {
	ca, err := certs.NewAuthority("bench CA", time.Hour)
	if err != nil {
		return nil, "", "", err
	}
	s, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		return nil, "", "", err
	}
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, s.CertPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(key, s.KeyPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, cert, key, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(cfg *tls.Config, url string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("not ready after 30 s")
}

// review wraps a benchmark pod in an AdmissionReview in namespace shop; the pod opts in by label,
// as neither server has a cluster to read namespace labels from.
func review(name string) ([]byte, error) { return reviewFor(name, "shop") }

// reviewFor is review in namespace.
func reviewFor(name, namespace string) ([]byte, error) {
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
	labels[seqLabel] = seqZero
	meta["labels"] = labels
	return json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "bench", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": namespace, "operation": "CREATE", "userInfo": map[string]any{"username": "bench"},
			"object": pod,
		},
	})
}

// onePatch posts the review once and returns the JSON patch of the answer.
func onePatch(cfg *tls.Config, url string, body []byte) ([]byte, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   string `json:"patch"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Response.Allowed || out.Response.Patch == "" {
		return nil, fmt.Errorf("no patch in the answer (HTTP %d, %v)", resp.StatusCode, err)
	}
	return base64.StdEncoding.DecodeString(out.Response.Patch)
}

// equivalent applies both patches to the review's pod and compares the results, leaving out the
// status annotation, which only rego-injector writes.
func equivalent(reviewBody, a, b []byte) error {
	var r struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(reviewBody, &r); err != nil {
		return err
	}
	result := func(patch []byte) (map[string]any, error) {
		p, err := evanphx.DecodePatch(patch)
		if err != nil {
			return nil, err
		}
		out, err := p.Apply(r.Request.Object)
		if err != nil {
			return nil, err
		}
		var pod map[string]any
		if err := json.Unmarshal(out, &pod); err != nil {
			return nil, err
		}
		delete(pod["metadata"].(map[string]any)["annotations"].(map[string]any), "rego-injector.io/status")
		return pod, nil
	}
	pa, err := result(a)
	if err != nil {
		return err
	}
	pb, err := result(b)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(pa, pb) {
		ja, _ := json.Marshal(pa)
		jb, _ := json.Marshal(pb)
		return fmt.Errorf("\n%s\n%s", ja, jb)
	}
	return nil
}

// attack runs one open-loop run. A response counts as a success when it is HTTP 200 and carries a
// JSON patch.
// seqLabel numbers the pods of a distinct run; seqZero is its value in the review as built, and
// keeps the review's length whatever the number.
const (
	seqLabel = "bench.rego-injector.io/seq"
	seqZero  = "0000000000"
)

// targets posts body, the same each time or, when distinct, with the pod's seqLabel numbered.
func targets(url string, body []byte, distinct bool) vegeta.Targeter {
	header := http.Header{"Content-Type": []string{"application/json"}}
	if !distinct {
		return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: url, Body: body, Header: header})
	}
	return numbered(url, body, new(atomic.Uint64))
}

// numbered posts body with the pod's seqLabel set to the next value of seq.
func numbered(url string, body []byte, seq *atomic.Uint64) vegeta.Targeter {
	header := http.Header{"Content-Type": []string{"application/json"}}
	return func(t *vegeta.Target) error {
		*t = vegeta.Target{Method: http.MethodPost, URL: url, Body: numberedBody(body, seq.Add(1)), Header: header}
		return nil
	}
}

// numberedBody is body with the pod's seqLabel set to n.
func numberedBody(body []byte, n uint64) []byte {
	at := bytes.Index(body, []byte(`"`+seqLabel+`":"`+seqZero+`"`))
	if at < 0 {
		panic("the review carries no " + seqLabel + " label to number") // review always adds it
	}
	at += len(seqLabel) + 4
	b := bytes.Clone(body)
	copy(b[at:at+len(seqZero)], fmt.Sprintf("%010d", n))
	return b
}

// mixed posts the pods of a rollout of many workloads: each workload's pods are mix.replicas
// identical pods in a row (its replicas, which the memo answers after the first), numbered by
// workload, and every mix.largeEvery'th workload is of large pods, the others typical.
func mixed(url string, typical, large []byte, mix mixConfig) vegeta.Targeter {
	header := http.Header{"Content-Type": []string{"application/json"}}
	var seq atomic.Uint64
	return func(t *vegeta.Target) error {
		w := (seq.Add(1) - 1) / uint64(mix.replicas)
		body := typical
		if w%uint64(mix.largeEvery) == uint64(mix.largeEvery-1) {
			body = large
		}
		*t = vegeta.Target{Method: http.MethodPost, URL: url, Body: numberedBody(body, w+1), Header: header}
		return nil
	}
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 1:
		return "st"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	}
	return "th"
}

func attack(cfg *tls.Config, targeter vegeta.Targeter, rate int, d time.Duration) vegeta.Metrics {
	a := vegeta.NewAttacker(vegeta.TLSConfig(cfg), vegeta.KeepAlive(true), vegeta.MaxWorkers(200),
		vegeta.Timeout(10*time.Second), vegeta.HTTP2(false))
	var m vegeta.Metrics
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()
	for res := range a.Attack(targeter, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, "bench") {
		if res.Code == http.StatusOK && !bytes.Contains(res.Body, []byte(`"patch"`)) {
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
			return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	return "?"
}
