// Package render turns a variant's Go template and the decision's values into the partial Pod that
// holds the sidecar.
package render
