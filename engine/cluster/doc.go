// Package cluster tells the engine what it needs to know of the cluster: the labels and annotations
// of namespaces, from a client-go informer cache in a cluster or from flags offline.
package cluster
