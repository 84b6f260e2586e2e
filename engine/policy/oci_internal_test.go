package policy

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

// keychain answers every registry with one AuthConfig.
type keychain authn.AuthConfig

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig(k)), nil
}

func TestRegistryAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		config  authn.AuthConfig
		want    string
		wantErr error
	}{
		{name: "anonymous"},
		{name: "auth", config: authn.AuthConfig{Auth: "dXNlcjpwYXNz"}, want: "Basic dXNlcjpwYXNz"},
		{name: "user and password", config: authn.AuthConfig{Username: "user", Password: "pass"}, want: "Basic dXNlcjpwYXNz"},
		{name: "registry token", config: authn.AuthConfig{RegistryToken: "t0ken"}, want: "Bearer t0ken"},
		{name: "identity token", config: authn.AuthConfig{IdentityToken: "refresh"}, wantErr: errIdentityToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &registryAuth{registry: "registry.example.com", keychain: keychain(tc.config)}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, "https://registry.example.com/v2/injector/manifests/v1", nil)
			err := a.Prepare(req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got := req.Header.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization %q, want %q", got, tc.want)
			}
			// A redirect (to blob storage) carries no credentials.
			redirected, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://blobs.example.com/x", nil)
			redirected.Response = &http.Response{StatusCode: http.StatusTemporaryRedirect}
			if err := a.Prepare(redirected); err != nil || redirected.Header.Get("Authorization") != "" {
				t.Errorf("redirect: %v, Authorization %q", err, redirected.Header.Get("Authorization"))
			}
		})
	}
}

func TestOCIClientConfig(t *testing.T) {
	cfg, err := clientConfig("http://127.0.0.1:5000", "/etc/ca.crt", registryAuthPlugin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"url":"http://127.0.0.1:5000"`, `"type":"oci"`, `"ca_cert":"/etc/ca.crt"`, `"plugin":"docker-config"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config %s lacks %s", cfg, want)
		}
	}
}
