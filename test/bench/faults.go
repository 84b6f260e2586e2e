package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/test/controlplane"
)

// faultConfig is what the fault run needs.
type faultConfig struct {
	server string
	// rate is the steady load, distinct pods per second over kept-alive connections; a tenth of it
	// more (at least 5/s) comes each on a new connection.
	rate int
	// window is how long each fault lasts.
	window time.Duration
	// shutdownDelay is serve's --shutdown-delay for the SIGTERM fault.
	shutdownDelay time.Duration
	// clusterBin holds etcd and kube-apiserver (test/tools/cluster-binaries.sh); empty or
	// incomplete: the apiserver fault is skipped.
	clusterBin string
	cpu        string
	// only names the faults to inject: bundle, apiserver, cert, sigterm; empty: all.
	only []string
}

// has reports whether fault is to be injected.
func (c faultConfig) has(fault string) bool {
	return len(c.only) == 0 || slices.Contains(c.only, fault)
}

// The fault run: rego-injector serves a bundle from an HTTP bundle server of the harness, reads
// namespaces from a real kube-apiserver, and its certificate from files, under steady open-loop
// load of distinct pods. One fault after another, with recovery between: the bundle server hangs,
// then serves garbage, then a new revision; the apiserver is stopped (SIGSTOP) and continued; the
// serving certificate is replaced; the process gets SIGTERM. Every admission is put in the phase
// it was sent in and classified; the run fails when an admission failed in a way the documented
// behaviour does not predict, or when the server did not behave as documented.
func faults(c faultConfig) error {
	for _, f := range c.only {
		if !slices.Contains([]string{"bundle", "apiserver", "cert", "sigterm"}, f) {
			return fmt.Errorf("-fault-only: unknown fault %q (bundle, apiserver, cert, sigterm)", f)
		}
	}
	dir, err := os.MkdirTemp("", "rego-injector-faults-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if keep {
			fmt.Printf("logs kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ca, err := certs.NewAuthority("faults CA", time.Hour)
	if err != nil {
		return err
	}
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := issue(ca, cert, key); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tlsConfig := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	tarball, err := os.ReadFile(filepath.Join("build", "default.tar.gz"))
	if err != nil {
		return fmt.Errorf("%w (make bundle writes it)", err)
	}
	first, err := withRevision(tarball, "faults-1")
	if err != nil {
		return err
	}
	second, err := withRevision(tarball, "faults-2")
	if err != nil {
		return err
	}
	bundles, err := startBundleServer(first)
	if err != nil {
		return err
	}
	defer bundles.close()

	var cp *controlplane.ControlPlane
	if !c.has("apiserver") {
		fmt.Println("faults: the apiserver fault is not asked for: no cluster, namespaces have no labels")
	} else if missing := missingBinaries(c.clusterBin); missing != "" {
		fmt.Printf("faults: the apiserver fault is skipped: %s (make cluster-binaries builds them, once per machine; -cluster-bin names their directory)\n", missing)
	} else {
		start := time.Now()
		if cp, err = startControlPlane(ctx, c.clusterBin, dir); err != nil {
			keep = true
			return err
		}
		defer cp.Stop()
		if err := createNamespace(ctx, cp, "shop", map[string]string{"istio-injection": "enabled"}); err != nil {
			return err
		}
		fmt.Printf("faults: etcd and kube-apiserver ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{c.server, "serve", "--listen", addr, "--tls-cert-file", cert, "--tls-key-file", key,
		"--bundle", bundles.url, "--bundle-poll-min", "1s", "--bundle-poll-max", "2s",
		"--shutdown-delay", c.shutdownDelay.String(), "--log-level", "warn"}
	if cp != nil {
		args = append(args, "--kubeconfig", cp.Kubeconfig)
	}
	if _, err := exec.LookPath("taskset"); err == nil && c.cpu != "" {
		args = append([]string{"taskset", "-c", c.cpu}, args...)
	}
	serverLog, err := os.Create(filepath.Join(dir, "rego-injector.log"))
	if err != nil {
		return err
	}
	defer serverLog.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, serverLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	base := "https://" + addr
	if err := waitReady(tlsConfig, base+"/readyz"); err != nil {
		keep = true
		return fmt.Errorf("rego-injector: %w", err)
	}

	r := &faultRun{cfg: tlsConfig, base: base, addr: addr, bundles: bundles, serverLog: serverLog.Name()}
	body, err := reviewFor("typical", "shop")
	if err != nil {
		return err
	}
	fmt.Printf("faults: %d distinct pods/s on kept-alive connections and %d/s on new ones, %s per fault\n", c.rate, freshRate(c.rate), c.window)
	l := startLoad(tlsConfig, base+"/inject", body, c.rate)
	// Not measured: the load opens its connections, the server's heap grows to its working size.
	time.Sleep(5 * time.Second)

	r.begin("steady load, before any fault", "0 failures")
	if cp != nil {
		r.probeNamespaces(ctx, cp, "before")
	}
	time.Sleep(10 * time.Second)

	// 1. The bundle server hangs, then serves garbage, then a new revision.
	if c.has("bundle") {
		r.bundleFaults(second, c.window)
	}

	// 2. The apiserver stops answering.
	if cp != nil {
		if err := r.apiserverFault(ctx, cp, c.window); err != nil {
			return err
		}
	}

	// 3. The serving certificate is replaced.
	if c.has("cert") {
		r.begin("serving certificate replaced (same CA)", "0 failures; new connections get the new certificate within 5 s")
		serial, err := issue(ca, cert, key)
		if err != nil {
			return err
		}
		rotated := time.Now()
		r.note(await("new certificate served", func() bool { return servedSerial(tlsConfig, addr) == serial }))
		time.Sleep(max(0, c.window-time.Since(rotated)))
	}

	// 4. SIGTERM: the shutdown delay, then the listener closes.
	var term termination
	if c.has("sigterm") {
		r.begin(fmt.Sprintf("SIGTERM, --shutdown-delay %s: answering, /readyz failing", c.shutdownDelay),
			"0 failures; /readyz 503 with stopping: true")
		term = r.sigterm(cmd.Process, exited, c.shutdownDelay)
		delay := r.phases[len(r.phases)-1]
		delay.to, delay.readyz, delay.metrics = term.lastOpen, term.snapReadyz, term.snapMetrics
		// The listener's last accepted connection is known to 10 ms: a connection dialled in
		// the last instants of the delay may be one the listener closed on (see below).
		delay.predicted = func(s sample) bool {
			return s.class == "reset" && s.sent.After(term.lastOpen.Add(-50*time.Millisecond))
		}
		closed := &faultPhase{name: "SIGTERM: listener closed, process exiting",
			expect: "requests in flight answered; every new one refused (connection refused, or EOF for a connection dialled as the listener closed, left unaccepted): the apiserver applies failurePolicy",
			from:   term.lastOpen, predicted: func(s sample) bool {
				// Every answer of the delay closed its connection, so no kept-alive connection
				// is left to cut: a reset can only be a connection dialled in the instant the
				// listener closed, which the kernel took and the server never accepted.
				return s.class == "refused" || s.class == "reset" && s.sent.Before(term.closed.Add(50*time.Millisecond))
			},
			readyz: "(no process)", metrics: "(no process)"}
		r.phases = append(r.phases, closed)
		time.Sleep(2 * time.Second)
		l.stop()
		closed.to = time.Now()
		r.note(term.String())
		select {
		case <-exited:
			if exitErr != nil {
				r.problem("rego-injector did not exit cleanly after SIGTERM: %v", exitErr)
			}
		default:
		}
		if term.notReady.IsZero() {
			r.problem("/readyz never failed during the shutdown delay")
		}
	} else {
		r.end()
		l.stop()
	}

	if c.has("bundle") {
		r.checkBundle()
	}
	samples := l.samples()
	r.report(samples)
	shutdownTable(samples, term)
	return r.verdict(&keep)
}

// verdict reports the findings; any keeps the logs.
func (r *faultRun) verdict(keep *bool) error {
	if len(r.problems) == 0 {
		fmt.Println("faults: every failed admission is one the documented behaviour predicts")
		return nil
	}
	*keep = true
	return fmt.Errorf("%d findings the documented behaviour does not predict:\n  %s", len(r.problems), strings.Join(r.problems, "\n  "))
}

// bundleFaults makes the bundle server hang, then serve garbage, then the revision next.
func (r *faultRun) bundleFaults(next []byte, window time.Duration) {
	r.begin("bundle server hangs (connections accepted, never answered)", "0 failures; faults-1 keeps serving; the download times out (10 s) and is refused")
	r.bundles.set(hangRequests)
	time.Sleep(window)
	r.begin("bundle server answers 200 with 4 KiB of random bytes", "0 failures; faults-1 keeps serving; every poll refused")
	r.bundles.set(serveGarbage)
	time.Sleep(window)
	r.begin("bundle server serves revision faults-2", "0 failures; faults-2 activated at the next poll (1-2 s after a refusal's back-off)")
	r.bundles.publish(next)
	r.bundles.set(serveBundle)
	r.note(await("revision faults-2 active", func() bool {
		return metricValue(metricsText(r.cfg, r.base), "rego_injector_bundle_info", `revision="faults-2"`) == 1
	}))
	time.Sleep(5 * time.Second)
}

// apiserverFault stops the apiserver for window, probing namespaces the informer cannot know,
// then continues it and probes again.
func (r *faultRun) apiserverFault(ctx context.Context, cp *controlplane.ControlPlane, window time.Duration) error {
	r.begin("kube-apiserver stopped (SIGSTOP)", "0 failures for namespaces in the informer's cache; a namespace not in it: HTTP 500 after the 2 s lookup timeout")
	if err := cp.APIServer.Pause(); err != nil {
		return err
	}
	r.probeUnknown(window)
	r.end() // what the server says while the apiserver is still stopped
	if err := cp.APIServer.Resume(); err != nil {
		return err
	}
	r.begin("kube-apiserver continued (SIGCONT)", "0 failures")
	r.probeNamespaces(ctx, cp, "after")
	time.Sleep(5 * time.Second)
	return nil
}

func missingBinaries(dir string) string {
	if dir == "" {
		return "no control-plane binaries given"
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Sprintf("no %s in %s", name, dir)
		}
	}
	return ""
}

func freshRate(rate int) int { return max(rate/10, 5) }

// faultRun is the record of one fault run: its phases, probes and findings.
type faultRun struct {
	cfg     *tls.Config
	base    string
	addr    string
	bundles *bundleServer
	// serverLog is where the server's warnings and errors go.
	serverLog string

	phases   []*faultPhase
	probes   []namespaceProbe
	problems []string
}

// faultPhase is a span of the run; an admission belongs to the phase it was sent in.
type faultPhase struct {
	name, expect string
	from, to     time.Time
	// predicted says which failure classes the documented behaviour predicts here; nil: none.
	predicted func(s sample) bool
	// readyz and metrics are what the server said at the end of the phase; bundle what the bundle
	// server served meanwhile; notes what else was seen.
	readyz, metrics, bundle string
	notes                   []string
}

// end closes the current phase, recording what the server says.
func (r *faultRun) end() {
	n := len(r.phases)
	if n == 0 || !r.phases[n-1].to.IsZero() {
		return
	}
	p := r.phases[n-1]
	p.readyz, p.metrics = r.snapshot()
	p.bundle = r.bundles.requests()
	p.to = time.Now()
}

// begin ends the current phase and opens the next, from where the last one ended.
func (r *faultRun) begin(name, expect string) {
	from := time.Now()
	if n := len(r.phases); n > 0 {
		r.end()
		from = r.phases[n-1].to
	} else {
		r.bundles.requests()
	}
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), name)
	r.phases = append(r.phases, &faultPhase{name: name, expect: expect, from: from})
}

func (r *faultRun) note(s string) {
	p := r.phases[len(r.phases)-1]
	p.notes = append(p.notes, s)
	fmt.Printf("          %s\n", s)
	if strings.HasPrefix(s, "NOT ") {
		r.problem("%s: %s", p.name, s)
	}
}

func (r *faultRun) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// snapshot says what /readyz and /metrics report.
func (r *faultRun) snapshot() (readyz, metrics string) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: r.cfg, DisableKeepAlives: true}}
	resp, err := c.Get(r.base + "/readyz")
	if err != nil {
		readyz = "unreachable: " + shorten(err.Error(), 60)
	} else {
		var st struct {
			Ready            bool   `json:"ready"`
			Revision         string `json:"revision"`
			NamespacesSynced bool   `json:"namespacesSynced"`
			Stopping         bool   `json:"stopping"`
			Bundle           struct {
				Refusals  int    `json:"refusals"`
				LastError string `json:"lastError"`
			} `json:"bundle"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		readyz = fmt.Sprintf("%d, ready %t, revision %s, %d refusals", resp.StatusCode, st.Ready, st.Revision, st.Bundle.Refusals)
		if st.Bundle.LastError != "" {
			readyz += ", last error: " + shorten(lastErrorCause(st.Bundle.LastError), 70)
		}
		if st.Stopping {
			readyz += ", stopping"
		}
	}
	text := metricsText(r.cfg, r.base)
	if text == "" {
		return readyz, "unreachable"
	}
	revision := "?"
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, `rego_injector_bundle_info{revision="`); ok && strings.HasSuffix(line, " 1") {
			revision, _, _ = strings.Cut(rest, `"`)
		}
	}
	metrics = fmt.Sprintf("bundle_info %s; activations: %.0f activated, %.0f refused; admissions result=error: %.0f", revision,
		metricValue(text, "rego_injector_bundle_activations_total", `bundle="default"`, `result="activated"`),
		metricValue(text, "rego_injector_bundle_activations_total", `bundle="default"`, `result="refused"`),
		metricValue(text, "rego_injector_admissions_total", `result="error"`))
	return readyz, metrics
}

// lastErrorCause keeps the end of a long wrapped error, where the cause is.
func lastErrorCause(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 70 {
		if j := strings.LastIndex(s[:i], ": "); j >= 0 {
			return s[j+2:]
		}
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// metricValue sums the samples of metric name whose labels include every one of labels.
func metricValue(text, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if !allIn(rest, labels) {
			continue
		}
		if f, err := strconv.ParseFloat(rest[strings.LastIndex(rest, " ")+1:], 64); err == nil {
			sum += f
		}
	}
	return sum
}

func allIn(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// checkBundle checks what the bundle faults should have left: faults-1 serving through both, at
// least one refusal in each, faults-2 after.
func (r *faultRun) checkBundle() {
	for _, p := range r.phases {
		switch {
		case strings.HasPrefix(p.name, "bundle server hangs"), strings.HasPrefix(p.name, "bundle server answers 200"):
			if !strings.Contains(p.metrics, "bundle_info faults-1;") {
				r.problem("%s: the active revision changed: %s", p.name, p.metrics)
			}
		case strings.HasPrefix(p.name, "bundle server serves"):
			if !strings.Contains(p.metrics, "bundle_info faults-2;") {
				r.problem("%s: %s", p.name, p.metrics)
			}
		}
	}
	refused := func(prefix string) float64 {
		for _, p := range r.phases {
			if strings.HasPrefix(p.name, prefix) {
				_, rest, _ := strings.Cut(p.metrics, "activated, ")
				f, _ := strconv.ParseFloat(strings.Fields(rest + " 0")[0], 64)
				return f
			}
		}
		return 0
	}
	before, hung, garbage := refused("steady"), refused("bundle server hangs"), refused("bundle server answers 200")
	if hung <= before {
		r.problem("the hanging bundle server was never counted as a refusal (%.0f before, %.0f after)", before, hung)
	}
	if garbage <= hung {
		r.problem("the garbage bundle was never counted as a refusal (%.0f before, %.0f after)", hung, garbage)
	}
}

// namespaceProbe is one admission sent on its own, for a namespace chosen to take a given path of
// the namespace lookup.
type namespaceProbe struct {
	when, namespace, endpoint, path string
	code                            int
	latency                         time.Duration
	answer                          string
	predicted                       bool
}

// probeNamespaces creates a namespace and at once sends a pod in it (the informer may not have it
// yet: then it is read from the apiserver), and sends a pod in a namespace that does not exist.
func (r *faultRun) probeNamespaces(ctx context.Context, cp *controlplane.ControlPlane, when string) {
	fresh := "faults-fresh-" + when
	if err := createNamespace(ctx, cp, fresh, map[string]string{"istio-injection": "enabled"}); err != nil {
		r.problem("create namespace %s: %v", fresh, err)
		return
	}
	p := r.probe(when, fresh, "/inject", "created a moment before")
	p.predicted = p.code == http.StatusOK && strings.Contains(p.answer, "patch")
	r.addProbe(p)
	p = r.probe(when, "faults-missing-"+when, "/inject", "does not exist")
	p.predicted = p.code == http.StatusInternalServerError && strings.Contains(p.answer, "not found")
	r.addProbe(p)
}

// probeUnknown sends pods in namespaces the informer cannot know, while the apiserver is stopped,
// for d; the last is sent early enough to be answered within d.
func (r *faultRun) probeUnknown(d time.Duration) {
	start := time.Now()
	for i := 0; time.Since(start) < d-4*time.Second; i++ {
		for _, endpoint := range []string{"/inject", "/validate"} {
			p := r.probe("stopped", fmt.Sprintf("faults-unknown-%d", i), endpoint, "not in the cache")
			// Predicted: the GET times out after 2 s and the server answers HTTP 500.
			p.predicted = p.code == http.StatusInternalServerError && p.latency >= 2*time.Second && p.latency < 4*time.Second
			r.addProbe(p)
		}
	}
	time.Sleep(max(0, d-time.Since(start)))
}

func (r *faultRun) addProbe(p namespaceProbe) {
	r.probes = append(r.probes, p)
	fmt.Printf("          probe %s %s (%s): HTTP %d in %s\n", p.endpoint, p.namespace, p.path, p.code, p.latency.Round(time.Millisecond))
	if !p.predicted {
		r.problem("probe %s %s (%s, apiserver %s): HTTP %d in %s: %s", p.endpoint, p.namespace, p.path, p.when, p.code, p.latency.Round(time.Millisecond), p.answer)
	}
}

func (r *faultRun) probe(when, namespace, endpoint, path string) namespaceProbe {
	p := namespaceProbe{when: when, namespace: namespace, endpoint: endpoint, path: path}
	body, err := reviewFor("typical", namespace)
	if err != nil {
		p.answer = err.Error()
		return p
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: r.cfg, DisableKeepAlives: true}}
	start := time.Now()
	resp, err := c.Post(r.base+endpoint, "application/json", bytes.NewReader(body))
	p.latency = time.Since(start)
	if err != nil {
		p.answer = err.Error()
		return p
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p.code, p.answer = resp.StatusCode, strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusOK {
		var out struct {
			Response struct {
				Allowed bool   `json:"allowed"`
				Patch   string `json:"patch"`
			} `json:"response"`
		}
		_ = json.Unmarshal(b, &out)
		p.answer = fmt.Sprintf("allowed %t", out.Response.Allowed)
		if out.Response.Patch != "" {
			p.answer += ", with a patch"
		}
	}
	return p
}

// termination is what SIGTERM led to, as seen from outside.
type termination struct {
	sent, notReady, lastOpen, closed, exited time.Time
	// readyz is the first failing answer; snapshot what /readyz and /metrics said then.
	readyz                  string
	snapReadyz, snapMetrics string
}

func (t termination) String() string {
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return at.Sub(t.sent).Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("after SIGTERM: /readyz failing %s (%s); listener last accepting %s, refusing %s; process exited %s",
		since(t.notReady), t.readyz, since(t.lastOpen), since(t.closed), since(t.exited))
}

// sigterm sends SIGTERM and watches /readyz, the listener and the process until it exits (at
// most delay + 15 s).
func (r *faultRun) sigterm(proc *os.Process, exited <-chan struct{}, delay time.Duration) termination {
	t := termination{sent: time.Now()}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		r.problem("SIGTERM: %v", err)
		return t
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { // /readyz on a new connection every 100 ms
		defer wg.Done()
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: r.cfg, DisableKeepAlives: true}}
		for {
			if resp, err := c.Get(r.base + "/readyz"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && t.notReady.IsZero() {
					var st struct {
						Stopping bool `json:"stopping"`
					}
					_ = json.Unmarshal(b, &st)
					t.notReady, t.readyz = time.Now(), fmt.Sprintf("HTTP %d, stopping: %t", resp.StatusCode, st.Stopping)
					t.snapReadyz, t.snapMetrics = r.snapshot()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	go func() { // the listener, every 10 ms
		defer wg.Done()
		for {
			at := time.Now()
			conn, err := net.DialTimeout("tcp", r.addr, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				t.lastOpen = at
			} else if t.closed.IsZero() {
				t.closed = at
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	select {
	case <-exited:
	case <-time.After(delay + 15*time.Second):
		r.problem("rego-injector still running %s after SIGTERM", delay+15*time.Second)
	}
	t.exited = time.Now()
	close(stop)
	wg.Wait()
	if t.lastOpen.IsZero() {
		t.lastOpen = t.sent
	}
	return t
}

// shutdownTable prints the admissions around SIGTERM by when they were sent: the last second
// before it (in flight at the signal), during the delay, in the moment the listener closed
// (between the last connection it accepted and the first it refused, 10 ms apart), and after.
func shutdownTable(samples []sample, t termination) {
	if t.closed.IsZero() {
		return
	}
	spans := []struct {
		name     string
		from, to time.Time
	}{
		{"the second before SIGTERM", t.sent.Add(-time.Second), t.sent},
		{"during the shutdown delay", t.sent, t.lastOpen},
		{"as the listener closed", t.lastOpen, t.closed},
		{"after the listener closed", t.closed, t.exited.Add(time.Hour)},
	}
	fmt.Println("| sent | admissions | answered | failed on kept-alive connections | failed on new connections |")
	fmt.Println("|---|---|---|---|---|")
	for _, sp := range spans {
		n, ok := 0, 0
		failed := [2]map[string]int{{}, {}}
		for _, s := range samples {
			if s.sent.Before(sp.from) || !s.sent.Before(sp.to) {
				continue
			}
			n++
			if s.class == "ok" {
				ok++
				continue
			}
			failed[btoi(s.fresh)][s.class]++
		}
		cell := func(m map[string]int) string {
			var out []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				out = append(out, fmt.Sprintf("%d %s", m[k], k))
			}
			return orDash(strings.Join(out, ", "))
		}
		fmt.Printf("| %s | %d | %d | %s | %s |\n", sp.name, n, ok, cell(failed[0]), cell(failed[1]))
	}
	fmt.Println()
	// The failures other than refused connections, grouped by class, connection and error.
	type group struct {
		n                      int
		firstSent, lastSent    time.Duration
		minLatency, maxLatency time.Duration
	}
	groups := map[string]*group{}
	for _, s := range samples {
		if s.class == "ok" || s.class == "refused" || s.sent.Before(t.sent.Add(-time.Second)) {
			continue
		}
		kind := "kept-alive"
		if s.fresh {
			kind = "new"
		}
		key := fmt.Sprintf("%s on %s connections: %s", s.class, kind, addrPattern.ReplaceAllString(s.detail, "*"))
		at := s.sent.Sub(t.sent)
		g := groups[key]
		if g == nil {
			g = &group{firstSent: at, lastSent: at, minLatency: s.latency, maxLatency: s.latency}
			groups[key] = g
		}
		g.n++
		g.firstSent, g.lastSent = min(g.firstSent, at), max(g.lastSent, at)
		g.minLatency, g.maxLatency = min(g.minLatency, s.latency), max(g.maxLatency, s.latency)
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		fmt.Printf("  %d %s\n    sent %s to %s after SIGTERM, failed after %s to %s\n", g.n, key,
			g.firstSent.Round(time.Millisecond), g.lastSent.Round(time.Millisecond), g.minLatency.Round(100*time.Microsecond), g.maxLatency.Round(100*time.Microsecond))
	}
	if len(groups) > 0 {
		fmt.Println()
	}
}

// addrPattern matches the addresses and ports in connection errors, which differ every time.
var addrPattern = regexp.MustCompile(`127\.0\.0\.1:\d+|0\.0\.0\.0:\d+`)

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sample is one admission of the steady load.
type sample struct {
	sent    time.Time
	latency time.Duration
	class   string
	detail  string
	// fresh is true for the stream that opens a new connection per admission.
	fresh bool
}

// classify names how an admission ended: "ok" (HTTP 200 with a patch), "HTTP <code>", "no patch",
// "timeout", "refused" (connection refused), "reset" (connection reset or closed mid-request), or
// "other".
func classify(r *vegeta.Result) string {
	switch {
	case r.Code == http.StatusOK && bytes.Contains(r.Body, []byte(`"patch"`)):
		return "ok"
	case r.Code == http.StatusOK:
		return "no patch"
	case r.Code != 0:
		return "HTTP " + strconv.Itoa(int(r.Code))
	case strings.Contains(r.Error, "connection refused"):
		return "refused"
	case strings.Contains(r.Error, "Client.Timeout"), strings.Contains(r.Error, "deadline exceeded"), strings.Contains(r.Error, "timeout"):
		return "timeout"
	case strings.Contains(r.Error, "reset by peer"), strings.Contains(r.Error, "EOF"), strings.Contains(r.Error, "broken pipe"), strings.Contains(r.Error, "closed"):
		return "reset"
	}
	return "other"
}

// load is the steady load: distinct pods in open loop, over kept-alive connections (as the
// apiserver keeps them) and, at a tenth of the rate, each on a new connection (a TLS handshake
// every time, which is where a replaced certificate is picked up).
type load struct {
	mu   sync.Mutex
	all  []sample
	stop func()
}

func startLoad(cfg *tls.Config, url string, body []byte, rate int) *load {
	l := &load{}
	var seq atomic.Uint64
	var wg sync.WaitGroup
	var attackers []*vegeta.Attacker
	for _, keepAlive := range []bool{true, false} {
		perSecond := rate
		if !keepAlive {
			perSecond = freshRate(rate)
		}
		a := vegeta.NewAttacker(vegeta.TLSConfig(cfg), vegeta.KeepAlive(keepAlive), vegeta.MaxWorkers(200),
			vegeta.Timeout(10*time.Second), vegeta.HTTP2(false))
		attackers = append(attackers, a)
		results := a.Attack(numbered(url, body, &seq), vegeta.ConstantPacer{Freq: perSecond, Per: time.Second}, 0, "faults")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for res := range results {
				s := sample{sent: res.Timestamp, latency: res.Latency, class: classify(res), fresh: !keepAlive}
				if s.class != "ok" {
					s.detail = res.Error
					if s.detail == "" {
						s.detail = shorten(string(bytes.TrimSpace(res.Body)), 200)
					}
				}
				l.mu.Lock()
				l.all = append(l.all, s)
				l.mu.Unlock()
			}
		}()
	}
	l.stop = func() {
		for _, a := range attackers {
			a.Stop()
		}
		wg.Wait()
	}
	return l
}

func (l *load) samples() []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// report prints a table of the phases and one of the probes, and records failures no documented
// behaviour predicts.
func (r *faultRun) report(samples []sample) {
	fmt.Println()
	fmt.Println("| phase | length | sent | failed | failures by class | predicted by the docs | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, p := range r.phases {
		var lat []time.Duration
		classes := map[string]int{}
		details := map[string]string{}
		failed, unpredicted := 0, 0
		notPredicted := map[string]bool{}
		for _, s := range samples {
			if s.sent.Before(p.from) || !s.sent.Before(p.to) {
				continue
			}
			lat = append(lat, s.latency)
			if s.class == "ok" {
				continue
			}
			failed++
			classes[s.class]++
			if details[s.class] == "" {
				details[s.class] = s.detail
			}
			if p.predicted == nil || !p.predicted(s) {
				unpredicted++
				notPredicted[s.class] = true
			}
		}
		slices.Sort(lat)
		var byClass []string
		for _, k := range slices.Sorted(maps.Keys(classes)) {
			byClass = append(byClass, fmt.Sprintf("%d %s", classes[k], k))
		}
		predicted := "all"
		if unpredicted > 0 {
			predicted = fmt.Sprintf("**%d not**", unpredicted)
			for _, k := range slices.Sorted(maps.Keys(notPredicted)) {
				r.problem("%s: %d failed (%s), e.g. %s", p.name, classes[k], k, details[k])
			}
		} else if failed == 0 {
			predicted = "-"
		}
		fmt.Printf("| %s | %.1f s | %d | %d | %s | %s | %s | %s | %s |\n", p.name, p.to.Sub(p.from).Seconds(), len(lat), failed,
			orDash(strings.Join(byClass, ", ")), predicted, pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1))
	}
	fmt.Println()
	fmt.Println("| phase | documented behaviour | /readyz at its end | /metrics at its end | bundle server requests | seen |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, p := range r.phases {
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", p.name, p.expect, orDash(p.readyz), orDash(p.metrics), orDash(p.bundle), orDash(strings.Join(p.notes, "; ")))
	}
	fmt.Printf("\nserver log: %d \"bundle refused\" lines, %d \"admission failed\" lines\n",
		countLines(r.serverLog, `"bundle refused`), countLines(r.serverLog, `"admission failed"`))
	if len(r.probes) > 0 {
		fmt.Println()
		fmt.Println("| apiserver | namespace | endpoint | answer | latency | predicted |")
		fmt.Println("|---|---|---|---|---|---|")
		for _, p := range r.probes {
			fmt.Printf("| %s | %s (%s) | %s | HTTP %d: %s | %s | %s |\n", p.when, p.namespace, p.path, p.endpoint, p.code,
				shorten(strings.ReplaceAll(p.answer, "|", "/"), 140), ms(p.latency), map[bool]string{true: "yes", false: "**no**"}[p.predicted])
		}
	}
	fmt.Println()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pct is the q-quantile of sorted (nearest rank).
func pct(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := max(0, int(math.Ceil(q*float64(len(sorted))))-1)
	return ms(sorted[i])
}

func countLines(path, substr string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(substr))
}
