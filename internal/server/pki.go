package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/muster-iot/muster/internal/pki"
)

// Validity of the CAs Muster creates for itself.
const (
	rootValidity = 25 * 365 * 24 * time.Hour
	subValidity  = 10 * 365 * 24 * time.Hour
)

// authorities are the node's own CAs.
type authorities struct {
	root, operational, server *pki.CA
}

// loadOrCreateAuthorities loads the CA hierarchy from the data directory,
// creating it on first start. A key that exists but cannot be read stops
// the start: silently making a new CA would orphan every issued certificate.
func loadOrCreateAuthorities(ctx context.Context, cfg Config) (*authorities, error) {
	pass, err := caPassphrase(cfg)
	if err != nil {
		return nil, err
	}
	ks, err := pki.NewFileKeyStore(cfg.path("keys"), pass)
	if err != nil {
		return nil, err
	}
	alg := pki.KeyAlgorithm(cfg.KeyAlgorithm)
	if alg == "" {
		alg = pki.KeyAlgorithm("ecdsa-p256")
	}
	if _, err := pki.ParseKeyAlgorithm(string(alg)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.path("pki"), 0o700); err != nil {
		return nil, fmt.Errorf("create pki directory: %w", err)
	}
	a := &authorities{}
	a.root, err = loadOrCreateCA(ctx, ks, cfg, "root", func() (*pki.CA, error) {
		return pki.NewRootCA(ctx, ks, "root", alg, pkix.Name{Organization: []string{"Muster"}, CommonName: "Muster Root CA"}, rootValidity)
	})
	if err != nil {
		return nil, err
	}
	for label, dst := range map[string]**pki.CA{"operational": &a.operational, "server": &a.server} {
		purpose, _ := pki.ParsePurpose(label)
		*dst, err = loadOrCreateCA(ctx, ks, cfg, label, func() (*pki.CA, error) {
			return a.root.NewSubCA(ctx, ks, label, purpose, alg, pkix.Name{Organization: []string{"Muster"}}, subValidity)
		})
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

func loadOrCreateCA(ctx context.Context, ks pki.KeyStore, cfg Config, label string, create func() (*pki.CA, error)) (*pki.CA, error) {
	certPath := cfg.path("pki", label+".pem")
	certPEM, err := os.ReadFile(certPath)
	switch {
	case err == nil:
		ca, err := pki.LoadCA(ctx, ks, label, certPEM)
		if err != nil {
			return nil, fmt.Errorf("load %s CA (%s): %w", label, certPath, err)
		}
		return ca, nil
	case errors.Is(err, fs.ErrNotExist):
		ca, err := create()
		if err != nil {
			return nil, fmt.Errorf("create %s CA: %w", label, err)
		}
		if err := os.WriteFile(certPath, ca.CertificatePEM(), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", certPath, err)
		}
		return ca, nil
	default:
		return nil, fmt.Errorf("read %s: %w", certPath, err)
	}
}

// caPassphrase finds the CA key passphrase. Without one configured, a random
// passphrase is kept in the data directory so that `muster serve` works on
// first try; production deployments pass MUSTER_CA_PASSPHRASE or a file kept
// elsewhere (docs/operations.md).
func caPassphrase(cfg Config) ([]byte, error) {
	if len(cfg.CAPassphrase) > 0 {
		return cfg.CAPassphrase, nil
	}
	file := cfg.CAPassphraseFile
	if file == "" {
		file = cfg.path("ca.passphrase")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(cfg.path("keys", "root.key.pem")); err == nil {
				return nil, fmt.Errorf("CA keys exist in %s but no passphrase was given: set %s or --ca-passphrase-file", cfg.path("keys"), pki.PassphraseEnv)
			}
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			pass := base64.RawURLEncoding.EncodeToString(b)
			if err := os.WriteFile(file, []byte(pass+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write %s: %w", file, err)
			}
			cfg.logger().Warn("generated a CA key passphrase in the data directory; for production keep it elsewhere and pass MUSTER_CA_PASSPHRASE", "file", file)
		}
	}
	pass, err := pki.PassphraseFromEnvOrFile("", file)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(pass), nil
}
