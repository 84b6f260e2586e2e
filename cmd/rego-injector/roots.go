package main

// The container image (make image) has no CA certificate files: it is built from nothing, and a
// bundle of roots copied into it would be one more thing to keep up to date outside go.mod. This
// embeds Mozilla's roots in the binary instead. Go uses them only when the system has none, so on a
// host, or with SSL_CERT_FILE or SSL_CERT_DIR set, the system's roots still win. They verify HTTPS
// bundle servers and other endpoints with public certificates; the apiserver and the webhook's own
// certificates are checked against their own CAs, never these.
import _ "golang.org/x/crypto/x509roots/fallback"
