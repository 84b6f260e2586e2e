// Package server serves the webhooks over TLS: certificate reload, routes, health, readiness, metrics
// and graceful shutdown.
package server
