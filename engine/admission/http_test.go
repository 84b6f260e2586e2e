package admission_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/rego-injector/rego-injector/engine/admission"
)

const review = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"kind":"Pod"}}}`

func serve(t *testing.T, h admission.Handler, method, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, "/inject", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	admission.Serve(h, slog.New(slog.DiscardHandler)).ServeHTTP(rec, req)
	return rec
}

func TestPanicAndErrorsAreHTTPErrors(t *testing.T) {
	h := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { panic("boom") })
	rec := serve(t, h, http.MethodPost, "application/json", review)
	// An HTTP error, so that the apiserver applies the webhook's failurePolicy.
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	ok := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { return admission.Denied("no") })
	rec = serve(t, ok, http.MethodPost, "application/json", review)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("a denial is an answer, not an error: %d %s", rec.Code, rec.Body)
	}
	if out.Response.Allowed || out.Response.UID != "u-1" || out.Response.Result.Code != http.StatusForbidden {
		t.Fatalf("unexpected response %s", rec.Body)
	}
}

func TestMethodAndContentType(t *testing.T) {
	ok := admission.HandlerFunc(func(context.Context, *admission.Request) *admission.Response { return admission.Allowed() })
	if rec := serve(t, ok, http.MethodGet, "application/json", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", rec.Code)
	}
	if rec := serve(t, ok, http.MethodPost, "application/json; charset=utf-8", review); rec.Code != http.StatusOK {
		t.Errorf("JSON with charset: status %d", rec.Code)
	}
	if rec := serve(t, ok, http.MethodPost, "application/yaml", review); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("YAML: status %d", rec.Code)
	}
}

func TestDeniedAndPatched(t *testing.T) {
	d := admission.Denied("no", "careful")
	if d.Allowed || d.Result.Code != http.StatusForbidden || d.Result.Message != "no" || d.Warnings[0] != "careful" {
		t.Errorf("Denied: %+v", d)
	}
	if p := admission.Patched(nil); p.PatchType != nil || !p.Allowed {
		t.Errorf("an empty patch must not set a patch type: %+v", p)
	}
}

// FuzzDecode: no body makes Decode panic, and whatever it accepts has a request with a UID.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(review))
	f.Add([]byte(strings.Replace(review, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":null}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := admission.Decode(body)
		if err != nil {
			return
		}
		if r.Request == nil || r.Request.UID == "" {
			t.Fatalf("accepted a review without a request UID: %s", body)
		}
	})
}
