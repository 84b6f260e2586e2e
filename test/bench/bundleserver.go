package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// bundleServer is an HTTP bundle server on 127.0.0.1 that can misbehave: it serves a bundle with
// an ETag (304 to a matching If-None-Match), or hangs every request without answering, or answers
// 200 with bytes that are not a tarball.
type bundleServer struct {
	url  string
	srv  *http.Server
	mode atomic.Value // bundleMode
	body atomic.Pointer[[]byte]

	mu     sync.Mutex
	served map[string]int // requests by what they got: "200", "304", "hung", "garbage"
	hung   []net.Conn     // connections held by hang, dropped by release
}

type bundleMode string

const (
	serveBundle  bundleMode = "bundle"
	hangRequests bundleMode = "hang"
	serveGarbage bundleMode = "garbage"
)

// startBundleServer serves tarball at <url> until close.
func startBundleServer(tarball []byte) (*bundleServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &bundleServer{url: "http://" + ln.Addr().String() + "/bundles/default.tar.gz", served: map[string]int{}}
	b.mode.Store(serveBundle)
	b.publish(tarball)
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serveHTTP)}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// publish replaces the bundle served.
func (b *bundleServer) publish(tarball []byte) { b.body.Store(&tarball) }

// set switches what the server does with the next requests. Leaving hangRequests drops the
// connections it holds, as a restarted server would.
func (b *bundleServer) set(m bundleMode) {
	b.mode.Store(m)
	if m != hangRequests {
		b.release()
	}
}

func (b *bundleServer) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.hung {
		_ = c.Close()
	}
	b.hung = nil
}

func (b *bundleServer) count(what string) {
	b.mu.Lock()
	b.served[what]++
	b.mu.Unlock()
}

// requests reports the requests served so far by outcome, and resets the counts.
func (b *bundleServer) requests() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for _, k := range []string{"200", "304", "hung", "garbage"} {
		if n := b.served[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	b.served = map[string]int{}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (b *bundleServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch b.mode.Load().(bundleMode) {
	case hangRequests:
		// Take the connection from the HTTP server and never answer on it.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		b.count("hung")
		b.mu.Lock()
		b.hung = append(b.hung, conn)
		b.mu.Unlock()
		return
	case serveGarbage:
		b.count("garbage")
		junk := make([]byte, 4096)
		_, _ = rand.Read(junk)
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(junk)
		return
	}
	body := *b.body.Load()
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if strings.Contains(r.Header.Get("If-None-Match"), etag) {
		b.count("304")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b.count("200")
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(body)
}

func (b *bundleServer) close() {
	_ = b.srv.Close()
	b.release()
}

// withRevision rewrites the .manifest of an OPA bundle tarball with revision rev.
func withRevision(tarball []byte, rev string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "/") == ".manifest" {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				return nil, fmt.Errorf("bundle manifest: %w", err)
			}
			m["revision"] = rev
			if data, err = json.Marshal(m); err != nil {
				return nil, err
			}
			h.Size = int64(len(data))
			found = true
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("bundle has no .manifest")
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
