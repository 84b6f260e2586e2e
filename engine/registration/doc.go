// Package registration writes the webhook configurations that route pods to each revision and tag,
// and finds configurations that would send one pod to two injectors.
package registration
