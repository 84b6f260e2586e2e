package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/rego-injector/rego-injector/engine/certs"
)

// soak runs rego-injector alone for d at rate distinct typical pods per second, from a bundle
// directory and certificate files. Halfway it writes a new bundle revision and a new serving
// certificate, and checks that both are taken up. RSS is sampled every 10 s. It fails on any failed
// admission, on a swap or rotation not seen within 30 s, or on RSS growing by 5 % or more between
// the first minute and the end.
func soak(server string, d time.Duration, rate int, cpu string) error {
	dir, err := os.MkdirTemp("", "rego-injector-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := certs.NewAuthority("soak CA", time.Hour)
	if err != nil {
		return err
	}
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	serial, err := issue(ca, cert, key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	bundleDir := filepath.Join(dir, "bundle")
	if err := os.CopyFS(bundleDir, os.DirFS(filepath.Join("build", "bundle-default"))); err != nil {
		return fmt.Errorf("copy build/bundle-default (make bundle writes it): %w", err)
	}
	if err := setRevision(bundleDir, "soak-1"); err != nil {
		return err
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{server, "serve", "--listen", addr, "--tls-cert-file", cert, "--tls-key-file", key,
		"--bundle", bundleDir, "--log-level", "error"}
	if _, err := exec.LookPath("taskset"); err == nil && cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "https://" + addr
	if err := waitReady(cfg, base+"/readyz"); err != nil {
		return err
	}
	body, err := review("typical")
	if err != nil {
		return err
	}
	fmt.Printf("soak: %s at %d distinct pods/s; idle RSS %s\n", d, rate, rss(cmd.Process.Pid))

	var samples []string
	done := make(chan vegeta.Metrics, 1) // buffered: the attack never waits on a soak that returned
	go func() {
		done <- attack(cfg, targets(base+"/inject", body, true), rate, d)
	}()
	start := time.Now()
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	swapped := false
	var result vegeta.Metrics
	var check []string
	for finished := false; !finished; {
		select {
		case result = <-done:
			finished = true
		case <-ticker.C:
			samples = append(samples, rss(cmd.Process.Pid))
			fmt.Printf("%6s  RSS %s\n", time.Since(start).Round(time.Second), samples[len(samples)-1])
			if swapped || time.Since(start) < d/2 {
				continue
			}
			swapped = true
			if serial, err = issue(ca, cert, key); err != nil {
				return err
			}
			if err := setRevision(bundleDir, "soak-2"); err != nil {
				return err
			}
			fmt.Printf("%6s  wrote bundle revision soak-2 and a new certificate\n", time.Since(start).Round(time.Second))
			check = append(check, await("bundle revision soak-2 active", func() bool {
				return strings.Contains(metricsText(cfg, base), `rego_injector_bundle_info{revision="soak-2"} 1`)
			}), await("new certificate served", func() bool { return servedSerial(cfg, addr) == serial }))
		}
	}
	fmt.Printf("\n%d requests, %.0f/s, %d failed; p50 %s, p99 %s, max %s\n", result.Requests, result.Throughput,
		result.Requests-uint64(float64(result.Requests)*result.Success+0.5), ms(result.Latencies.P50), ms(result.Latencies.P99), ms(result.Latencies.Max))
	for _, c := range check {
		fmt.Println(c)
	}
	if result.Success < 1 {
		return fmt.Errorf("failed admissions: %v", result.Errors)
	}
	for _, c := range check {
		if strings.HasPrefix(c, "NOT") {
			return fmt.Errorf("%s", c)
		}
	}
	if len(samples) < 7 {
		return nil
	}
	first, last := mib(samples[5]), mib(samples[len(samples)-1])
	growth := (last - first) / first * 100
	fmt.Printf("RSS after 1 min %s, at the end %s: %+.1f %%\n", samples[5], samples[len(samples)-1], growth)
	if growth >= 5 {
		return fmt.Errorf("RSS grew %.1f %% after the first minute", growth)
	}
	return nil
}

// issue writes a new serving certificate for 127.0.0.1 signed by ca, and returns its serial.
func issue(ca *certs.Authority, cert, key string) (string, error) {
	s, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(s.CertPEM)
	if block == nil {
		return "", fmt.Errorf("issued certificate is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	// Key first: a reader that sees the new certificate then finds its key.
	if err := writeAtomic(key, s.KeyPEM); err != nil {
		return "", err
	}
	return c.SerialNumber.String(), writeAtomic(cert, s.CertPEM)
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// setRevision rewrites the bundle's .manifest with revision rev.
func setRevision(dir, rev string) error {
	return writeAtomic(filepath.Join(dir, ".manifest"), fmt.Appendf(nil, `{"revision": %q, "roots": ["injector"]}`, rev))
}

// await polls ok for up to 30 s and says how long what took.
func await(what string, ok func() bool) string {
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		if ok() {
			return fmt.Sprintf("%s after %s", what, time.Since(start).Round(100*time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "NOT " + what + " within 30 s"
}

func metricsText(cfg *tls.Config, base string) string {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// servedSerial is the serial of the certificate a fresh TLS connection to addr is served.
func servedSerial(cfg *tls.Config, addr string) string {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func mib(s string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimSuffix(s, " MiB"), 64)
	return f
}
