package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Manager keeps the injector's own certificate: it runs Ensure at start and then every interval,
// serving whatever certificate the Secret holds, so that every replica converges on the Secret's
// certificate and the caBundle stays patched.
type Manager struct {
	client   kubernetes.Interface
	opts     Options
	interval time.Duration
	log      *slog.Logger
	current  atomic.Pointer[tls.Certificate]
	// routingWarned: the last round's Result.RoutingErr was logged.
	routingWarned bool
}

// NewManager returns a Manager; Start must succeed before it serves.
func NewManager(client kubernetes.Interface, opts Options, interval time.Duration, log *slog.Logger) *Manager {
	return &Manager{client: client, opts: opts, interval: interval, log: log}
}

// Start ensures the certificate once, failing when it cannot, then keeps it up to date in the
// background until ctx is done. A failed later round is logged and the certificate in hand kept.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.round(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.round(ctx); err != nil && ctx.Err() == nil {
					m.log.Error("renew the serving certificate; keeping the current one", "err", err)
				}
			}
		}
	}()
	return nil
}

func (m *Manager) round(ctx context.Context) error {
	res, err := Ensure(ctx, m.client, m.opts)
	if err != nil {
		return fmt.Errorf("manage certificates: %w", err)
	}
	pair, err := tls.X509KeyPair(res.CertPEM, res.KeyPEM)
	if err != nil {
		return fmt.Errorf("manage certificates: secret %s/%s: %w", m.opts.Namespace, m.opts.Secret, err)
	}
	if old := m.current.Load(); old == nil || string(old.Certificate[0]) != string(pair.Certificate[0]) {
		m.log.Info("serving certificate loaded from the secret", "secret", m.opts.Namespace+"/"+m.opts.Secret, "issuedHere", res.Issued)
	}
	if res.StagedCA {
		m.log.Info("new CA in the caBundle", "secret", m.opts.Namespace+"/"+m.opts.Secret, "signsFrom", res.NextCAFrom)
	}
	if res.NewCA && !res.PreviousCAUntil.IsZero() {
		m.log.Info("new CA signs the serving certificate", "secret", m.opts.Namespace+"/"+m.opts.Secret, "previousTrustedUntil", res.PreviousCAUntil)
	}
	for _, p := range res.Patched {
		m.log.Info("caBundle patched", "configuration", p)
	}
	if res.RoutingErr != nil && !m.routingWarned {
		m.log.Warn("the caBundle of the webhook configurations of revisions and tags is not kept", "err", res.RoutingErr)
	}
	m.routingWarned = res.RoutingErr != nil
	m.current.Store(&pair)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.current.Load()
	if c == nil {
		return nil, fmt.Errorf("no serving certificate yet")
	}
	return c, nil
}
