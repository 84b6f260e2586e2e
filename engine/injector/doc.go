// Package injector runs one pod through the active bundle revision (policy input, decision,
// template, merge and patch, or the validating verdict), the one path of the webhooks and of every
// command, with a memo of the answers to pods seen before.
package injector
