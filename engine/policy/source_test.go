package policy_test

import (
	"strings"
	"testing"

	"github.com/rego-injector/rego-injector/engine/policy"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		remote  bool
		wantErr string // "" wants a source
	}{
		{spec: "bundles/default"},
		{spec: "/etc/rego-injector/bundle.tar.gz"},
		{spec: "https://bundles.example.com/v1/injector.tar.gz", remote: true},
		{spec: "http://127.0.0.1:8181/bundles/injector.tar.gz?tenant=a", remote: true},
		{spec: "HTTPS://bundles.example.com/injector.tar.gz", remote: true},
		{spec: "", wantErr: "bundle source is empty"},
		{spec: "http://", wantErr: `bundle URL "http://": no host`},
		{spec: "https://", wantErr: `bundle URL "https://": no host`},
		{spec: "https:///injector.tar.gz", wantErr: `bundle URL "https:///injector.tar.gz": no host`},
		{spec: "http://:8181/injector.tar.gz", wantErr: `bundle URL "http://:8181/injector.tar.gz": no host`},
		{spec: "http://bundles.example.com:port/b.tar.gz", wantErr: `bundle URL "http://bundles.example.com:port/b.tar.gz": invalid port ":port" after host`},
		{spec: "bundles/v1://draft"},
		{spec: "ftp://bundles.example.com/b.tar.gz", wantErr: `bundle URL "ftp://bundles.example.com/b.tar.gz": scheme "ftp" is not supported: want http or https`},
		{spec: "file:///etc/bundle.tar.gz", wantErr: `scheme "file" is not supported: want http or https, or a path without a scheme`},
		{spec: "https://user:secret@bundles.example.com/b.tar.gz", wantErr: "user information in a bundle URL is not supported"},
	} {
		s, err := policy.ParseSource(tc.spec, nil)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error: %v", tc.spec, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tc.spec, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "%!"):
			t.Errorf("%q: misformatted error %q", tc.spec, err)
		case err == nil && s.Remote() != tc.remote:
			t.Errorf("%q: Remote() = %v, want %v", tc.spec, s.Remote(), tc.remote)
		}
		if strings.Contains(tc.spec, "secret") && err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error repeats the password: %v", tc.spec, err)
		}
	}
}
