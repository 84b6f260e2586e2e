// Package k8s pins the Kubernetes control-plane binaries the end-to-end tests run: kube-apiserver,
// kube-controller-manager and kubectl, built from k8s.io/kubernetes with its staging modules
// replaced by their published versions. It holds no code; see test/tools/cluster-binaries.sh.
package k8s
