// Package policy loads Rego bundles, prepares their queries once per revision, and evaluates them per
// request into typed decisions.
package policy
