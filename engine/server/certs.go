package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rego-injector/rego-injector/engine/certs"
)

// FileCertificate serves the key pair in certFile and keyFile and reloads it when either file changes
// (a renewed Secret, say), checking at most once per interval. A pair that fails to load is logged
// and the previous one kept.
type FileCertificate struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// LoadFileCertificate loads the pair once, failing when it cannot.
func LoadFileCertificate(certFile, keyFile string, log *slog.Logger) (*FileCertificate, error) {
	c := &FileCertificate{certFile: certFile, keyFile: keyFile, interval: 5 * time.Second, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *FileCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= c.interval {
		c.checked = time.Now()
		if stamp, err := c.fileStamp(); err == nil && stamp != c.stamp {
			if err := c.reload(); err != nil {
				c.log.Error("reload serving certificate; keeping the previous one", "err", err)
			} else {
				c.log.Info("serving certificate reloaded", "cert", c.certFile)
			}
		}
	}
	return c.cert, nil
}

func (c *FileCertificate) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return stamp, nil
}

func (c *FileCertificate) reload() error {
	stamp, err := c.fileStamp()
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	c.cert, c.stamp = &pair, stamp
	return nil
}

// SelfSigned is a throwaway CA and a serving certificate it signed for localhost, 127.0.0.1 and ::1
// (and any extra hosts), for local use only.
type SelfSigned struct {
	// CAPEM is the CA certificate, PEM-encoded: give it to clients (curl --cacert, caBundle).
	CAPEM []byte
	// Certificate is the serving certificate and key.
	Certificate tls.Certificate
}

// NewSelfSigned makes a CA and a serving certificate valid for a year.
func NewSelfSigned(hosts ...string) (*SelfSigned, error) {
	const year = 365 * 24 * time.Hour
	ca, err := certs.NewAuthority("rego-injector local CA", year)
	if err != nil {
		return nil, err
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range hosts {
		if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	serving, err := ca.Issue(names, year)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	return &SelfSigned{CAPEM: ca.CertPEM, Certificate: pair}, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &s.Certificate, nil
}

// WriteCA writes the CA certificate to dir/ca.crt and returns its path.
func (s *SelfSigned) WriteCA(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write CA: %w", err)
	}
	path := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(path, s.CAPEM, 0o644); err != nil {
		return "", fmt.Errorf("write CA: %w", err)
	}
	return path, nil
}
