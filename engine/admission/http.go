package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
)

// MaxBodyBytes bounds an AdmissionReview body. The apiserver's own limit on an object is 3 MiB; the
// review wraps the object and, on UPDATE, its old version.
const MaxBodyBytes = 7 << 20

// Serve returns an http.Handler that decodes AdmissionReviews, passes each request to h and writes
// the response in the review's own version. Errors in the HTTP exchange are answered precisely (400
// malformed, 405 not POST, 413 too large, 415 not JSON). An Errored response from h, and a panic in
// h, are answered with their HTTP status (500) and message, so that the apiserver treats them as a
// failed call and applies the webhook's failurePolicy. The rest of a body that is too large is read
// and discarded, up to a bound, before the 413 is written, so that a client that writes its whole
// request before it reads still reads the answer.
func Serve(h Handler, log *slog.Logger) http.Handler {
	return &server{handler: h, log: log}
}

type server struct {
	handler Handler
	log     *slog.Logger
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "admission reviews are POSTed")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: want application/json", r.Header.Get("Content-Type")))
		return
	}
	body, err := readBody(r)
	if errors.Is(err, errTooLarge) {
		if !drain(r.Body) {
			// The client may still be sending: the connection cannot carry another request.
			w.Header().Set("Connection", "close")
		}
		httpError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	review, err := Decode(body)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp := s.handle(r, review.Request)
	if code := failed(resp); code != 0 {
		// An error, not a verdict: answered as an HTTP error so that the apiserver applies the
		// webhook's failurePolicy (an AdmissionReview with allowed: false would be a denial).
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		httpError(w, code, resp.Result.Message)
		return
	}
	resp.UID = review.Request.UID
	out, err := review.encode(resp)
	if err != nil {
		s.log.Error("encode admission response", "uid", resp.UID, "err", err)
		httpError(w, http.StatusInternalServerError, "encode response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// failed is the HTTP status of an Errored response that is a failure to answer rather than a
// verdict: a server error, or 429 for an admission shed under overload; 0 for any other response.
func failed(resp *Response) int {
	if resp.Allowed || resp.Result == nil {
		return 0
	}
	if code := int(resp.Result.Code); code >= http.StatusInternalServerError || code == http.StatusTooManyRequests {
		return code
	}
	return 0
}

// errTooLarge is the error of a body longer than MaxBodyBytes.
var errTooLarge = fmt.Errorf("request body exceeds the limit of %d bytes (%d MiB)", MaxBodyBytes, MaxBodyBytes>>20)

// readBody reads r's body, up to MaxBodyBytes; a longer one is errTooLarge, and not read further.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxBodyBytes {
		return nil, errTooLarge
	}
	return body, nil
}

// maxDrainBytes bounds what is read and discarded of a body too large to serve.
const maxDrainBytes = 32 << 20

// drain reads and discards what is left of body, up to maxDrainBytes, and reports whether it reached
// the end. An HTTP/1.1 client may write its whole request before it reads the answer: when the server
// stops reading and closes the connection while the client is still writing, the client gets a reset
// connection, not the 413. Reading the rest lets it finish writing and read the answer.
func drain(body io.Reader) bool {
	n, err := io.Copy(io.Discard, io.LimitReader(body, maxDrainBytes+1))
	return err == nil && n <= maxDrainBytes
}

func (s *server) handle(r *http.Request, req *Request) (resp *Response) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic answering admission", "uid", req.UID, "panic", p, "stack", string(debug.Stack()))
			resp = Errored(http.StatusInternalServerError, fmt.Errorf("internal error: %v", p))
		}
	}()
	resp = s.handler.Handle(r.Context(), req)
	if resp == nil {
		resp = Errored(http.StatusInternalServerError, errors.New("internal error: no response"))
	}
	return resp
}

func httpError(w http.ResponseWriter, code int, msg string) {
	http.Error(w, msg, code)
}

// Review is a decoded AdmissionReview and the version it came in.
type Review struct {
	// APIVersion is admission.k8s.io/v1 or admission.k8s.io/v1beta1.
	APIVersion string
	Request    *Request
}

// Decode parses an AdmissionReview of either version. The two versions share one wire shape.
func Decode(body []byte) (*Review, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	switch review.APIVersion {
	case admissionv1.SchemeGroupVersion.String(), admissionv1beta1.SchemeGroupVersion.String():
	default:
		return nil, fmt.Errorf("apiVersion %q: want %s or %s", review.APIVersion, admissionv1.SchemeGroupVersion, admissionv1beta1.SchemeGroupVersion)
	}
	if review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("kind %q: want AdmissionReview", review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("AdmissionReview request has no uid")
	}
	return &Review{APIVersion: review.APIVersion, Request: review.Request}, nil
}

func (r *Review) encode(resp *Response) ([]byte, error) {
	out := admissionv1.AdmissionReview{Response: resp}
	out.APIVersion = r.APIVersion
	out.Kind = "AdmissionReview"
	return json.Marshal(out)
}
