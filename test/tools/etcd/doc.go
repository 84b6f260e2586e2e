// Package etcd pins the etcd server the end-to-end tests run, in a module of its own so that it
// cannot move the control plane's dependency versions. It holds no code.
package etcd
