// Package registry pins the CNCF distribution registry the OCI bundle tests run, in a module of its
// own so that it cannot move the webhook's dependency versions. It holds no code.
package registry
