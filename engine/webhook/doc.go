// Package webhook answers the apiserver's admission calls for pods with an injector, and leaves
// behind what each answer should: metrics, a log line, a decision log line, Kubernetes Events and
// the shadow bundle's comparison.
package webhook
