package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// authorities are the node's CAs: the registry, which every part that
// issues or verifies certificates uses, and the node-wide CAs as they were
// at start, for the listeners' TLS certificates.
type authorities struct {
	registry                  *ca.Registry
	root, operational, server *pki.CA
	// keys is the PKCS#11 session to close at shutdown; nil for key files.
	keys io.Closer
}

// openAuthorities opens the CA registry in st with the configured key
// store. The first start of a deployment creates the root, operational and
// server CAs; later starts, on this node or another sharing the database,
// load them. A CA key that cannot be read stops the start: silently making
// a new CA would orphan every certificate issued.
func openAuthorities(ctx context.Context, cfg Config, st *store.Store) (*authorities, error) {
	alg, err := pki.ParseKeyAlgorithm(cfg.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	ks, keys, err := keyStore(cfg)
	if err != nil {
		return nil, err
	}
	// Nodes sharing a database share the CA keys through it: key files are
	// kept in the database as encrypted, so a node with an empty data
	// directory loads them (issue 6; docs/decisions/0013-many-nodes.md).
	// Keys on a PKCS#11 token stay on the token.
	if files, ok := ks.(*pki.FileKeyStore); ok {
		ks = ca.NewSharedKeys(files, st)
	}
	a := &authorities{keys: keys}
	if a.registry, err = ca.Open(ctx, st, ks, ca.Options{KeyAlgorithm: alg, Logger: cfg.logger()}); err != nil {
		a.close()
		return nil, fmt.Errorf("CA registry: %w", err)
	}
	for p, dst := range map[pki.Purpose]**pki.CA{pki.PurposeRoot: &a.root, pki.PurposeOperational: &a.operational, pki.PurposeServer: &a.server} {
		issuer, err := a.registry.IssuerFor(ctx, p, "")
		if err != nil {
			a.close()
			return nil, err
		}
		*dst = issuer.Signer
	}
	return a, nil
}

// close ends the PKCS#11 session, if there is one.
func (a *authorities) close() error {
	if a.keys == nil {
		return nil
	}
	return a.keys.Close()
}

// keyStore is where CA keys live: the PKCS#11 token cfg.PKCS11 names, or
// passphrase-encrypted PKCS#8 files in <data-dir>/keys. The closer is the
// token session, nil for files.
func keyStore(cfg Config) (pki.KeyStore, io.Closer, error) {
	if p := cfg.PKCS11; p != nil {
		hsm, err := pki.NewPKCS11KeyStore(pki.PKCS11Config{ModulePath: p.ModulePath, TokenLabel: p.TokenLabel, PIN: p.PIN})
		if err != nil {
			return nil, nil, err
		}
		return hsm, hsm, nil
	}
	pass, err := caPassphrase(cfg)
	if err != nil {
		return nil, nil, err
	}
	ks, err := pki.NewFileKeyStore(cfg.path("keys"), pass)
	return ks, nil, err
}

// InitCA creates the CA hierarchy, or loads it when it exists, exactly as
// the first start of `muster serve` does, writes <data-dir>/ca.pem and
// returns every CA: `muster ca init`.
func InitCA(ctx context.Context, cfg Config) ([]store.CA, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory: set --data-dir or MUSTER_DATA_DIR")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, Logger: cfg.logger()})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	a, err := openAuthorities(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	defer a.close()
	if err := writeFileAtomic(cfg.path("ca.pem"), a.root.CertificatePEM(), 0o644); err != nil {
		return nil, err
	}
	return a.registry.List(ctx, store.CAFilter{})
}

// caPassphrase finds the CA key passphrase. Without one configured, a random
// passphrase is kept in the data directory so that `muster serve` works on
// first try; production deployments pass MUSTER_CA_PASSPHRASE or a file kept
// elsewhere, or use PKCS#11.
func caPassphrase(cfg Config) ([]byte, error) {
	if len(cfg.CAPassphrase) > 0 {
		return cfg.CAPassphrase, nil
	}
	file := cfg.CAPassphraseFile
	if file == "" {
		file = cfg.path("ca.passphrase")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			if keys, _ := filepath.Glob(cfg.path("keys", "*.key.pem")); len(keys) > 0 {
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
