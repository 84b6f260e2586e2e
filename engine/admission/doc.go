// Package admission speaks the kube-apiserver's AdmissionReview protocol (admission.k8s.io v1 and
// v1beta1) over HTTP; it knows nothing of policy.
package admission
