package metrics_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rego-injector/rego-injector/engine/metrics"
)

// series returns the values of label on the series of the named family.
func series(t *testing.T, m *metrics.Metrics, family, label string) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestPolicyLabelsAreBounded: the codes and rule names a bundle emits become label values only if
// they look like the documented vocabulary, and only so many of them; the rest are counted as
// "other".
func TestPolicyLabelsAreBounded(t *testing.T) {
	m := metrics.New()
	for _, code := range []string{"namespace_not_enabled", "x y", "Opted_Out", "", "a" + string(make([]byte, 70))} {
		m.Admission("inject", metrics.ResultSkipped, "", code, "", time.Millisecond)
	}
	for i := range 1000 {
		m.Admission("inject", metrics.ResultSkipped, "", fmt.Sprintf("code_%d", i), "", time.Millisecond)
		m.Violation(fmt.Sprintf("rule_%d", i), "deny")
	}
	m.Violation("require sidecar!", "warn")

	reasons := series(t, m, "rego_injector_admissions_total", "reason")
	if len(reasons) > metrics.MaxPolicyLabelValues+2 { // the cap, "other" and ""
		t.Errorf("%d reason series, want at most %d", len(reasons), metrics.MaxPolicyLabelValues+2)
	}
	for _, bad := range []string{"x y", "Opted_Out", "code_999"} {
		if _, ok := reasons[bad]; ok {
			t.Errorf("reason %q became a label value", bad)
		}
	}
	if reasons["namespace_not_enabled"] != 1 || reasons[""] != 1 {
		t.Errorf("a valid code, or no code, was not kept: %v", reasons["namespace_not_enabled"])
	}
	// 1,000 codes, of which the cap fit beside namespace_not_enabled; plus "x y", "Opted_Out" and the long one.
	if want := float64(1000 - (metrics.MaxPolicyLabelValues - 1) + 3); reasons[metrics.OtherLabelValue] != want {
		t.Errorf("%v admissions counted as %q, want %v", reasons[metrics.OtherLabelValue], metrics.OtherLabelValue, want)
	}

	rules := series(t, m, "rego_injector_policy_violations_total", "rule")
	if len(rules) > metrics.MaxPolicyLabelValues+1 {
		t.Errorf("%d rule series, want at most %d", len(rules), metrics.MaxPolicyLabelValues+1)
	}
	if _, ok := rules["require sidecar!"]; ok || rules[metrics.OtherLabelValue] == 0 {
		t.Error("an invalid rule name became a label value")
	}
}

// TestRefusedLabelValuesAreLoggedOnce: each refused value is logged once, however often it comes.
func TestRefusedLabelValuesAreLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	m := metrics.New(metrics.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	for range 5 {
		m.Admission("inject", metrics.ResultSkipped, "", "x y", "", time.Millisecond)
		m.Violation("Require-Sidecar", "deny")
		m.Admission("inject", metrics.ResultSkipped, "", "opted_out", "", time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `label=reason value="x y"`) || !strings.Contains(lines[1], "label=rule value=Require-Sidecar") {
		t.Errorf("want one line per refused value:\n%s", buf.String())
	}
	var nilMetrics *metrics.Metrics
	nilMetrics.Admission("inject", metrics.ResultSkipped, "", "x y", "", time.Millisecond) // records nothing, and does not panic
}

// TestShippedPolicyLabelsFit: every code and rule name the default policies emit is a label value.
func TestShippedPolicyLabelsFit(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "policies", "injector", "*.rego"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies: %v", err)
	}
	emitted := regexp.MustCompile(`"code": "([^"]*)"|violation\("([^"]*)"`)
	pattern := regexp.MustCompile(metrics.PolicyLabelPattern)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range emitted.FindAllStringSubmatch(string(src), -1) {
			found++
			if v := m[1] + m[2]; !pattern.MatchString(v) {
				t.Errorf("%s: %q does not match %s", f, v, metrics.PolicyLabelPattern)
			}
		}
	}
	if found < 15 {
		t.Errorf("found only %d codes and rules in the policies: has their form changed?", found)
	}
	for _, v := range []string{"up_to_date", "unspecified"} { // the injector's own
		if !pattern.MatchString(v) {
			t.Errorf("%q does not match", v)
		}
	}
}

// TestServingCertificateExpiry: the gauge follows the certificate being served, rotation included,
// and has no sample while there is none.
func TestServingCertificateExpiry(t *testing.T) {
	var current *tls.Certificate
	m := metrics.New()
	m.ServingCertificate(func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if current == nil {
			return nil, errors.New("no certificate yet")
		}
		return current, nil
	})
	expiry := func() []float64 {
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []float64
		for _, f := range families {
			if f.GetName() == "rego_injector_serving_certificate_expiry_timestamp_seconds" {
				for _, s := range f.GetMetric() {
					out = append(out, s.GetGauge().GetValue())
				}
			}
		}
		return out
	}
	if got := expiry(); len(got) != 0 {
		t.Errorf("a sample %v before any certificate", got)
	}
	for _, notAfter := range []time.Time{time.Unix(1900000000, 0), time.Unix(1950000000, 0)} {
		current = certificate(t, notAfter)
		if got := expiry(); len(got) != 1 || got[0] != float64(notAfter.Unix()) {
			t.Errorf("expiry %v, want %d", got, notAfter.Unix())
		}
	}
}

func certificate(t *testing.T, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
