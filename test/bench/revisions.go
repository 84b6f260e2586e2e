package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rego-injector/rego-injector/engine/revisions"
	"github.com/rego-injector/rego-injector/test/bundletree"
	"github.com/rego-injector/rego-injector/test/controlplane"
)

// revisionsConfig is what the revisions run needs.
type revisionsConfig struct {
	server string
	// rate is the admissions per second of the three namespaces together; duration the length of
	// the load, at least 20 s and at most 60 s.
	rate     int
	duration time.Duration
	// clusterBin holds etcd and kube-apiserver (test/tools/cluster-binaries.sh); the run needs them.
	clusterBin string
	cpu        string
}

const (
	// injectorNamespace holds the tags ConfigMap and is never injected.
	injectorNamespace = "rego-injector-system"
	// checkInterval is serve's --bundle-check-interval in the revisions run.
	checkInterval = 200 * time.Millisecond
	// warmUp is the load's first seconds, while connections open and the heap grows: counted for
	// failures, left out of the latency table.
	warmUp = 3 * time.Second
	// swapAfterMove is how long after the tag move the bundle of revision 1-31 is swapped.
	swapAfterMove = 5 * time.Second
)

// servedBy is what an answer's status annotation says: the revision that injected the pod, the
// tag that chose it, and that revision's bundle revision.
type servedBy struct{ rev, tag, bundle string }

func (s servedBy) String() string {
	tag := "no tag"
	if s.tag != "" {
		tag = "tag " + s.tag
	}
	return fmt.Sprintf("%s (%s), bundle %s", s.rev, tag, s.bundle)
}

// revStream is one namespace of the load: what answers it before its event, and after.
type revStream struct {
	namespace, label string
	before, after    servedBy
	// event is "tag move", "bundle swap", or empty for a namespace whose answers never change.
	event string
}

// revSample is one admission of the revisions run.
type revSample struct {
	sample
	stream int
	by     servedBy
}

// answered is when the answer came.
func (s revSample) answered() time.Time { return s.sent.Add(s.latency) }

// revisionsRun serves revisions 1-31 and 1-32 from bundle directories, with tags prod -> 1-31 and
// canary -> 1-32 in the tags ConfigMap of a real kube-apiserver, under open-loop load of distinct
// pods in three namespaces: one on tag prod, one on tag canary, one on revision 1-31 by name. In
// the middle of the load tag prod moves to 1-32 (the ConfigMap is updated), and a few seconds
// later revision 1-31's bundle is replaced by a new bundle revision (a new tree written beside
// the old one, then a symlink renamed over). From the status annotation of every answer it
// measures how long after each change the first and the last answers of the namespace concerned
// changed. It fails on any failed admission, on an answer from a revision the namespace should
// not get, on a bundle refused, or when a change was never seen.
func revisionsRun(c revisionsConfig) error {
	if missing := missingBinaries(c.clusterBin); missing != "" {
		return fmt.Errorf("the revisions run reads tags and namespaces from a kube-apiserver: %s (make cluster-binaries builds etcd and kube-apiserver, once per machine; -cluster-bin or $REGO_INJECTOR_CLUSTER_BIN names their directory)", missing)
	}
	dir, err := os.MkdirTemp("", "rego-injector-revisions-")
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
	tlsConfig, cert, key, err := serving(dir)
	if err != nil {
		return err
	}

	// Revision 1-31 is served through a symlink, which the swap renames; 1-32 from a directory.
	// The trailing separator makes the bundle loader read the tree the link points at.
	bundles := filepath.Join(dir, "bundles")
	link31 := filepath.Join(bundles, "1-31")
	if err := bundletree.Write(".", filepath.Join(bundles, "1-31.a"), "bench-1-31-a", nil); err != nil {
		return err
	}
	if err := os.Symlink("1-31.a", link31); err != nil {
		return err
	}
	if err := bundletree.Write(".", filepath.Join(bundles, "1-32"), "bench-1-32-a", nil); err != nil {
		return err
	}

	clusterDir := filepath.Join(dir, "cluster")
	if err := os.Mkdir(clusterDir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	cp, err := startControlPlane(ctx, c.clusterBin, clusterDir)
	if err != nil {
		keep = true
		return err
	}
	defer cp.Stop()
	streams := []revStream{
		{namespace: "bench-prod", label: "prod", event: "tag move",
			before: servedBy{"1-31", "prod", "bench-1-31-a"}, after: servedBy{"1-32", "prod", "bench-1-32-a"}},
		{namespace: "bench-canary", label: "canary",
			before: servedBy{"1-32", "canary", "bench-1-32-a"}, after: servedBy{"1-32", "canary", "bench-1-32-a"}},
		{namespace: "bench-1-31", label: "1-31", event: "bundle swap",
			before: servedBy{"1-31", "", "bench-1-31-a"}, after: servedBy{"1-31", "", "bench-1-31-b"}},
	}
	if err := createNamespace(ctx, cp, injectorNamespace, nil); err != nil {
		return err
	}
	for _, s := range streams {
		if err := createNamespace(ctx, cp, s.namespace, map[string]string{"istio.io/rev": s.label}); err != nil {
			return err
		}
	}
	tags := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: revisions.TagsConfigMap, Namespace: injectorNamespace},
		Data: map[string]string{"prod": "1-31", "canary": "1-32"}}
	if _, err := cp.Client.CoreV1().ConfigMaps(injectorNamespace).Create(ctx, tags, metav1.CreateOptions{}); err != nil {
		return err
	}
	fmt.Printf("revisions: etcd and kube-apiserver ready, namespaces and tags created in %s\n", time.Since(start).Round(100*time.Millisecond))

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{c.server, "serve", "--listen", addr, "--tls-cert-file", cert, "--tls-key-file", key,
		"--kubeconfig", cp.Kubeconfig, "--injector-namespace", injectorNamespace,
		"--bundle", "1-31=" + link31 + string(filepath.Separator), "--bundle", "1-32=" + filepath.Join(bundles, "1-32"),
		"--bundle-check-interval", checkInterval.String(), "--events=false", "--log-level", "warn"}
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
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "https://" + addr
	if err := waitReady(tlsConfig, base+"/readyz"); err != nil {
		keep = true
		return fmt.Errorf("rego-injector: %w", err)
	}
	bodies := make([][]byte, len(streams))
	for i, s := range streams {
		if bodies[i], err = reviewFor("typical", s.namespace); err != nil {
			return err
		}
		if got := awaitServedBy(tlsConfig, base+"/inject", bodies[i], s.before); got != s.before {
			keep = true
			return fmt.Errorf("namespace %s (istio.io/rev=%s) before the load: answered by %s, want %s", s.namespace, s.label, got, s.before)
		}
	}
	fmt.Printf("revisions: rego-injector ready, idle RSS %s; every namespace answered as expected\n", rss(cmd.Process.Pid))

	// The load, and the two changes in its middle.
	fmt.Printf("revisions: %d distinct pods/s for %s over %d namespaces; tag prod moves to 1-32 at %s, revision 1-31's bundle is swapped %s later\n",
		c.rate, c.duration, len(streams), moveAt(c.duration).Round(100*time.Millisecond), swapAfterMove)
	l := startRevisionLoad(tlsConfig, base+"/inject", bodies, c.rate, c.duration)
	time.Sleep(time.Until(l.start.Add(moveAt(c.duration))))
	seen := watchReadyz(tlsConfig, base+"/readyz", l.start.Add(c.duration))
	moved, moveTook, err := moveTag(ctx, cp, "prod", "1-32")
	if err != nil {
		l.wait()
		return err
	}
	fmt.Printf("%s  tag prod moved to 1-32 (ConfigMap updated in %s)\n", moved.Format("15:04:05.000"), moveTook.Round(time.Millisecond))
	time.Sleep(time.Until(moved.Add(swapAfterMove)))
	swapped, wrote, err := swapBundle(link31, "1-31.b", "bench-1-31-b")
	if err != nil {
		l.wait()
		return err
	}
	fmt.Printf("%s  revision 1-31's bundle swapped to bench-1-31-b (tree written in %s, then the link renamed)\n", swapped.Format("15:04:05.000"), wrote.Round(time.Millisecond))
	samples := l.wait()
	metrics := metricsText(tlsConfig, base)
	fmt.Printf("revisions: load done; RSS %s\n", rss(cmd.Process.Pid))
	readyz := <-seen
	fmt.Printf("/readyz (polled every 50 ms): tag prod -> 1-32 %s after the move; revision 1-31 at bench-1-31-b %s after the swap\n\n",
		after(readyz.tagMoved, moved), after(readyz.swapped, swapped))

	r := &revisionsReport{streams: streams, samples: samples, events: map[string]time.Time{"tag move": moved, "bundle swap": swapped},
		from: l.start.Add(warmUp), to: l.start.Add(c.duration)}
	r.failures()
	r.answers()
	r.transitions()
	r.latencies()
	r.metrics(metrics)
	if n := countLines(serverLog.Name(), `"bundle refused`); n > 0 {
		r.problem("the reloader refused %d bundles (see the server log)", n)
	}
	if len(r.problems) > 0 {
		keep = true
		return fmt.Errorf("%d findings:\n  %s", len(r.problems), strings.Join(r.problems, "\n  "))
	}
	fmt.Println("revisions: 0 failed admissions; the tag move and the bundle swap were both seen through")
	return nil
}

// readyzSeen is when /readyz first reported the tag moved and the bundle swapped.
type readyzSeen struct{ tagMoved, swapped time.Time }

// watchReadyz polls /readyz every 50 ms until until, and then says when it first reported tag prod
// on 1-32 and revision 1-31 at bundle revision bench-1-31-b.
func watchReadyz(cfg *tls.Config, url string, until time.Time) <-chan readyzSeen {
	out := make(chan readyzSeen, 1)
	go func() {
		var seen readyzSeen
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		for ; time.Now().Before(until) && (seen.tagMoved.IsZero() || seen.swapped.IsZero()); time.Sleep(50 * time.Millisecond) {
			resp, err := c.Get(url)
			if err != nil {
				continue
			}
			var st struct {
				Revisions map[string]string `json:"revisions"`
				Tags      map[string]string `json:"tags"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			now := time.Now()
			if seen.tagMoved.IsZero() && st.Tags["prod"] == "1-32" {
				seen.tagMoved = now
			}
			if seen.swapped.IsZero() && st.Revisions["1-31"] == "bench-1-31-b" {
				seen.swapped = now
			}
		}
		out <- seen
	}()
	return out
}

// after says how long after from at was, or "never".
func after(at, from time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return at.Sub(from).Round(time.Millisecond).String()
}

// moveAt is when, after the load starts, the tag moves: a third of the way through the measured
// part, which leaves the swap and what follows it most of the run.
func moveAt(d time.Duration) time.Duration { return warmUp + (d-warmUp)/3 }

// awaitServedBy posts body until its answer comes from want, for up to 10 s (the informers may
// still be settling), and says what answered last.
func awaitServedBy(cfg *tls.Config, url string, body []byte, want servedBy) servedBy {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	var got servedBy
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var class string
		if got, class = servedByOf(b); class == "ok" && got == want {
			break
		}
	}
	return got
}

// servedByOf reads an admission answer: its class ("ok", "denied", "no patch", "no status") and,
// when ok, what the status annotation in its patch says served the pod.
func servedByOf(body []byte) (servedBy, string) {
	var review struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   string `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &review); err != nil {
		return servedBy{}, "not a review"
	}
	if !review.Response.Allowed {
		return servedBy{}, "denied"
	}
	patch, err := base64.StdEncoding.DecodeString(review.Response.Patch)
	if err != nil || len(patch) == 0 {
		return servedBy{}, "no patch"
	}
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return servedBy{}, "no patch"
	}
	var status string
	for _, op := range ops {
		if op.Op != "add" && op.Op != "replace" {
			continue
		}
		switch op.Path {
		case "/metadata/annotations/rego-injector.io~1status":
			_ = json.Unmarshal(op.Value, &status)
		case "/metadata/annotations":
			var annotations map[string]string
			_ = json.Unmarshal(op.Value, &annotations)
			status = annotations["rego-injector.io/status"]
		}
	}
	var st struct {
		Rev      string `json:"rev"`
		Tag      string `json:"tag"`
		Revision string `json:"revision"`
	}
	if status == "" || json.Unmarshal([]byte(status), &st) != nil {
		return servedBy{}, "no status"
	}
	return servedBy{st.Rev, st.Tag, st.Revision}, "ok"
}

// revisionLoad is the load of the revisions run: one open-loop stream of distinct pods per
// namespace, over kept-alive connections.
type revisionLoad struct {
	start time.Time
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []revSample
}

// startRevisionLoad sends the reviews of bodies, rate per second in all (shared evenly), for d.
func startRevisionLoad(cfg *tls.Config, url string, bodies [][]byte, rate int, d time.Duration) *revisionLoad {
	l := &revisionLoad{start: time.Now()}
	var seq atomic.Uint64
	for i, body := range bodies {
		perSecond := rate / len(bodies)
		if i < rate%len(bodies) {
			perSecond++
		}
		a := vegeta.NewAttacker(vegeta.TLSConfig(cfg), vegeta.KeepAlive(true), vegeta.MaxWorkers(200),
			vegeta.Timeout(10*time.Second), vegeta.HTTP2(false))
		results := a.Attack(numbered(url, body, &seq), vegeta.ConstantPacer{Freq: perSecond, Per: time.Second}, d, "revisions")
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for res := range results {
				s := revSample{sample: sample{sent: res.Timestamp, latency: res.Latency, class: classify(res)}, stream: i}
				if s.class == "ok" {
					s.by, s.class = servedByOf(res.Body)
				}
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
	return l
}

// wait waits for the load to end and returns its samples in the order they were sent.
func (l *revisionLoad) wait() []revSample {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.all, func(a, b revSample) int { return a.sent.Compare(b.sent) })
	return slices.Clone(l.all)
}

// moveTag points tag at revision in the tags ConfigMap, and returns when the update was sent and
// how long the apiserver took to accept it.
func moveTag(ctx context.Context, cp *controlplane.ControlPlane, tag, revision string) (time.Time, time.Duration, error) {
	configMaps := cp.Client.CoreV1().ConfigMaps(injectorNamespace)
	cm, err := configMaps.Get(ctx, revisions.TagsConfigMap, metav1.GetOptions{})
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("move tag %s: %w", tag, err)
	}
	cm.Data[tag] = revision
	sent := time.Now()
	if _, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return time.Time{}, 0, fmt.Errorf("move tag %s: %w", tag, err)
	}
	return sent, time.Since(sent), nil
}

// swapBundle writes a bundle tree at bundle revision rev into tree, beside the symlink link, then
// points link at it with one rename: a reader that follows the link finds the old tree or the new
// one, never one half written. The old tree is left in place for a read still going through it.
// It returns when the link was renamed and how long writing the tree took.
func swapBundle(link, tree, rev string) (time.Time, time.Duration, error) {
	start := time.Now()
	if err := bundletree.Write(".", filepath.Join(filepath.Dir(link), tree), rev, nil); err != nil {
		return time.Time{}, 0, err
	}
	wrote := time.Since(start)
	next := link + ".next"
	if err := os.Symlink(tree, next); err != nil {
		return time.Time{}, 0, err
	}
	renamed := time.Now()
	if err := os.Rename(next, link); err != nil {
		return time.Time{}, 0, err
	}
	return renamed, wrote, nil
}

// revisionsReport prints what the samples of a revisions run show, and collects its findings.
type revisionsReport struct {
	streams []revStream
	samples []revSample
	events  map[string]time.Time
	// from and to bound the measured part of the load (after the warm-up).
	from, to time.Time
	// settled is when the last change was seen through: the last answer of the old kind came.
	settled  time.Time
	problems []string
}

func (r *revisionsReport) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// failures counts the admissions that were not answered with a patch, by class.
func (r *revisionsReport) failures() {
	classes := map[string]int{}
	details := map[string]string{}
	for _, s := range r.samples {
		if s.class != "ok" {
			classes[s.class]++
			if details[s.class] == "" {
				details[s.class] = s.detail
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(classes)) {
		r.problem("%d admissions failed (%s), e.g. %s", classes[k], k, details[k])
	}
}

// answers prints, per namespace, how many admissions each revision answered, and records the
// answers from a revision the namespace should not get at the time.
func (r *revisionsReport) answers() {
	fmt.Println("| namespace | istio.io/rev | admissions | failed | answered by |")
	fmt.Println("|---|---|---|---|---|")
	for i, st := range r.streams {
		counts := map[servedBy]int{}
		n, failed, early, stray := 0, 0, 0, 0
		at := r.events[st.event]
		for _, s := range r.samples {
			if s.stream != i {
				continue
			}
			n++
			switch {
			case s.class != "ok":
				failed++
				continue
			case s.by != st.before && s.by != st.after:
				stray++
			case s.by != st.before && s.answered().Before(at):
				early++
			}
			counts[s.by]++
		}
		var by []string
		for _, k := range slices.SortedFunc(maps.Keys(counts), func(a, b servedBy) int { return strings.Compare(a.String(), b.String()) }) {
			by = append(by, fmt.Sprintf("%s: %d", k, counts[k]))
		}
		fmt.Printf("| %s | %s | %d | %d | %s |\n", st.namespace, st.label, n, failed, strings.Join(by, "; "))
		if stray > 0 {
			r.problem("namespace %s: %d answers from neither %s nor %s", st.namespace, stray, st.before, st.after)
		}
		if early > 0 {
			r.problem("namespace %s: %d answers from %s came before the %s", st.namespace, early, st.after, st.event)
		}
	}
	fmt.Println()
}

// transitions prints, for each change, counted from the change: when the first answer of the new
// kind was sent and came, from when on every answer was of the new kind (sent), and when the last
// of the old kind was sent and came.
func (r *revisionsReport) transitions() {
	fmt.Println("| change | namespace | first answer from the new: sent, answered | every answer from the new: sent from | last answer from the old: sent, answered | old answers sent after the first new |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, st := range r.streams {
		if st.event == "" {
			continue
		}
		at := r.events[st.event]
		var firstNew, allNew, lastOld *revSample
		overlap := 0
		for j := range r.samples {
			s := &r.samples[j]
			if s.stream != i || s.class != "ok" {
				continue
			}
			switch s.by {
			case st.after:
				if firstNew == nil {
					firstNew = s
				}
				if allNew == nil {
					allNew = s
				}
			case st.before:
				lastOld, allNew = s, nil
				if firstNew != nil {
					overlap++
				}
			}
		}
		since := func(t time.Time) string { return fmt.Sprintf("%+.0f ms", float64(t.Sub(at).Microseconds())/1000) }
		first, all, old := "never", "never", "-"
		if firstNew != nil {
			first = since(firstNew.sent) + ", " + since(firstNew.answered())
		}
		if allNew != nil {
			all = since(allNew.sent)
		}
		if lastOld != nil {
			old = since(lastOld.sent) + ", " + since(lastOld.answered())
		}
		fmt.Printf("| %s (%s → %s) | %s | %s | %s | %s | %d |\n", st.event, st.before, st.after, st.namespace, first, all, old, overlap)
		switch {
		case firstNew == nil:
			r.problem("%s: namespace %s was never answered by %s", st.event, st.namespace, st.after)
		case allNew == nil:
			r.problem("%s: namespace %s was still answered by %s at the end of the load", st.event, st.namespace, st.before)
		}
		if lastOld != nil && lastOld.answered().After(r.settled) {
			r.settled = lastOld.answered()
		}
	}
	fmt.Println()
}

// latencies prints the latency of the measured load before the tag move, between the move and the
// swap, from the swap until a second after it was seen through, and after.
func (r *revisionsReport) latencies() {
	moved, swapped := r.events["tag move"], r.events["bundle swap"]
	settled := swapped
	if r.settled.After(settled) {
		settled = r.settled
	}
	settled = settled.Add(time.Second)
	phases := []struct {
		name     string
		from, to time.Time
	}{
		{"before: steady load", r.from, moved},
		{"during: tag prod moved, until the swap", moved, swapped},
		{"during: bundle of 1-31 swapped, until 1 s after it was seen through", swapped, settled},
		{"after", settled, r.to},
	}
	fmt.Println("| phase | length | admissions | failed | p50 | p90 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		var lat []time.Duration
		failed := 0
		for _, s := range r.samples {
			if s.sent.Before(p.from) || !s.sent.Before(p.to) {
				continue
			}
			lat = append(lat, s.latency)
			if s.class != "ok" {
				failed++
			}
		}
		slices.Sort(lat)
		fmt.Printf("| %s | %.1f s | %d | %d | %s | %s | %s | %s |\n", p.name, p.to.Sub(p.from).Seconds(), len(lat), failed,
			pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 1))
	}
	fmt.Println()
}

// metrics compares the server's admissions by revision with the answers the harness counted (the
// server's include the checks made before the load).
func (r *revisionsReport) metrics(text string) {
	counted := map[string]int{}
	for _, s := range r.samples {
		if s.class == "ok" {
			counted[s.by.rev]++
		}
	}
	var parts []string
	for _, rev := range slices.Sorted(maps.Keys(counted)) {
		parts = append(parts, fmt.Sprintf(`revision="%s": %.0f (answers counted: %d)`, rev,
			metricValue(text, "rego_injector_admissions_total", `revision="`+rev+`"`), counted[rev]))
	}
	fmt.Printf("rego_injector_admissions_total: %s\n\n", strings.Join(parts, "; "))
}
