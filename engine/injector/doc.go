// Package injector runs one pod through the active bundle revision: policy input, decision, template,
// merge and patch for the mutating webhook, deny and warn for the validating one, and the same steps
// offline for the command line.
package injector
