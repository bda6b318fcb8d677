package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/muster-iot/muster/internal/pki"
)

// Provision gets the device its operational certificate with the birth
// credential (or claim): a new key, a CSR, the request, and the
// credentials saved. It also re-provisions a provisioned device (after a
// factory reset, an owner change or a suspected key compromise); Muster
// then revokes the old certificates.
func (a *Agent) Provision(ctx context.Context) (*Credentials, error) {
	var birth *tls.Certificate
	switch {
	case a.cfg.Claim != "":
	case a.cfg.Birth.PrivateKey == nil:
		return nil, errors.New("agent: provisioning needs a birth credential or a claim")
	default:
		birth = &a.cfg.Birth
	}
	a.measurements = a.measureForProvisioning(ctx)
	return a.request(ctx, kindProvision, birth, pkix.Name{CommonName: "device"})
}

// Renew gets a new certificate for a new key with the current operational
// certificate; the device keeps its identity and record.
func (a *Agent) Renew(ctx context.Context) (*Credentials, error) {
	cur := a.Credentials()
	if cur == nil {
		var err error
		if cur, err = a.Load(); err != nil {
			return nil, fmt.Errorf("agent: nothing to renew: %w", err)
		}
	}
	op := cur.TLSCertificate()
	// RFC 7030 section 4.2.2: a renewal names the same subject.
	return a.request(ctx, kindRenew, &op, cur.Certificate.Subject)
}

// request runs one provisioning or renewal with a new key, or with the
// key of the same request still in flight.
func (a *Agent) request(ctx context.Context, kind string, cred *tls.Certificate, subject pkix.Name) (*Credentials, error) {
	key, csr, ok := a.pending(kind)
	if !ok {
		var err error
		if key, err = pki.GenerateKey(a.alg); err != nil {
			return nil, fmt.Errorf("agent: generate key: %w", err)
		}
		if csr, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: subject.CommonName}}, key); err != nil {
			return nil, fmt.Errorf("agent: make CSR: %w", err)
		}
		if err := a.keepPending(kind, key, csr); err != nil {
			return nil, fmt.Errorf("agent: keep pending request: %w", err)
		}
	}
	c, err := a.exchange(ctx, kind, cred, csr)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			a.dropPending(kind) // a new attempt needs a new request
		}
		return nil, err
	}
	c.Key = key
	if err := a.save(c); err != nil {
		return nil, err
	}
	a.dropPending(kind)
	a.setCredentials(c)
	a.log.Info("credentials stored", "kind", kind, "device", c.DeviceID, "not_after", c.Certificate.NotAfter)
	return c, nil
}

// Run bootstraps the device and keeps its certificate fresh until ctx
// ends: it loads the stored credentials or provisions, then renews
// RenewBefore ahead of expiry, and re-provisions with the birth credential
// when renewal is refused (an expired certificate, a changed policy).
func (a *Agent) Run(ctx context.Context) error {
	c, err := a.Load()
	if errors.Is(err, fs.ErrNotExist) {
		c, err = a.Provision(ctx)
	}
	if err != nil {
		return err
	}
	for {
		wait := time.Until(a.renewAt(c))
		a.log.Info("next renewal", "in", wait.Round(time.Second))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, 0)):
		}
		next, err := a.Renew(ctx)
		if errors.Is(err, ErrRefused) && a.cfg.Birth.PrivateKey != nil {
			a.log.Warn("renewal refused; re-provisioning with the birth certificate")
			next, err = a.Provision(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Error("renewal failed; retrying in a minute", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Minute):
			}
			continue
		}
		c = next
	}
}

// renewAt is when c should be renewed.
func (a *Agent) renewAt(c *Credentials) time.Time {
	before := a.cfg.RenewBefore
	if before <= 0 {
		before = c.Certificate.NotAfter.Sub(c.Certificate.NotBefore) / 3
	}
	return c.Certificate.NotAfter.Add(-before)
}
