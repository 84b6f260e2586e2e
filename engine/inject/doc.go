// Package inject merges a rendered sidecar into a pod, records what it added in the status annotation,
// and strips an earlier injection so that injecting twice changes nothing.
package inject
