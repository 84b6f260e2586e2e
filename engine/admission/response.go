package admission

import (
	"context"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Request is one admission request, whatever AdmissionReview version carried it.
type Request = admissionv1.AdmissionRequest

// Response is the answer to one request; UID is filled in by the server.
type Response = admissionv1.AdmissionResponse

// Handler answers admission requests. It returns a response, never an error: failures are Errored
// responses, so the apiserver's failurePolicy decides what happens next.
type Handler interface {
	Handle(ctx context.Context, req *Request) *Response
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) *Response

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, req *Request) *Response { return f(ctx, req) }

// Allowed admits the request unchanged.
func Allowed(warnings ...string) *Response {
	return &Response{Allowed: true, Warnings: warnings}
}

// Patched admits the request with a JSON patch. An empty patch admits it unchanged.
func Patched(patch []byte, warnings ...string) *Response {
	r := Allowed(warnings...)
	if len(patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		r.Patch, r.PatchType = patch, &pt
	}
	return r
}

// Denied refuses the request with HTTP status 403 in the response and message as its reason.
func Denied(message string, warnings ...string) *Response {
	return &Response{
		Allowed:  false,
		Warnings: warnings,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusForbidden,
			Reason:  metav1.StatusReasonForbidden,
			Message: message,
		},
	}
}

// Errored says the request could not be answered: code is an HTTP status (5xx), err the cause. Serve
// answers it as an HTTP error, and the apiserver's failurePolicy decides what happens to the object.
func Errored(code int32, err error) *Response {
	return &Response{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    code,
			Message: err.Error(),
		},
	}
}
