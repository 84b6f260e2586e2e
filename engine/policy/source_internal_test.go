package policy

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestClientConfigIsJSON: OPA's client reads its configuration as JSON; a CA file path with
// characters Go's %q quotes differently from JSON (DEL, U+2028, a non-BMP character outside the
// printable ones, ...) still arrives as it is.
func TestClientConfigIsJSON(t *testing.T) {
	for _, caFile := range []string{"", "/etc/ca.crt", "/tmp/ca\x7f.crt", "/tmp/ca\u2028.crt", "/tmp/ca\U000e0001.crt", "/tmp/ca\a\v.crt", `/tmp/"ca" \\ back.crt`, "/tmp/ca-é-😀.crt"} {
		t.Run(strconv.QuoteToASCII(caFile), func(t *testing.T) {
			cfg, err := clientConfig("https://bundles.example.com:8443", caFile, "")
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(cfg) {
				t.Fatalf("not JSON: %s", cfg)
			}
			var got struct {
				URL string `json:"url"`
				TLS *struct {
					CACert string `json:"ca_cert"`
				} `json:"tls"`
			}
			if err := json.Unmarshal(cfg, &got); err != nil {
				t.Fatal(err)
			}
			if got.URL != "https://bundles.example.com:8443" {
				t.Errorf("url %q", got.URL)
			}
			switch {
			case caFile == "" && got.TLS != nil:
				t.Errorf("no CA file, but a tls section: %s", cfg)
			case caFile != "" && (got.TLS == nil || got.TLS.CACert != caFile):
				t.Errorf("ca_cert: %s, want %q", cfg, caFile)
			}
		})
	}
	if _, err := clientConfig("https://bundles.example.com", "/tmp/ca\xff.crt", ""); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("a path JSON cannot carry: %v", err)
	}
}
