package pki

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"errors"
	"fmt"
	"sync"

	"github.com/ThalesGroup/crypto11"
)

// PKCS11Config selects a PKCS#11 token and logs in to it.
type PKCS11Config struct {
	// ModulePath is the vendor library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	ModulePath string
	// TokenLabel selects the token by its label.
	TokenLabel string
	// PIN is the user PIN.
	PIN string
}

// PKCS11KeyStore keeps CA keys on a PKCS#11 token (an HSM, or SoftHSM2 in
// tests). Keys are generated on the token as non-extractable and are found
// again by their label, stored as both CKA_LABEL and CKA_ID.
type PKCS11KeyStore struct {
	ctx *crypto11.Context
	// mu makes the exists-then-generate sequence atomic within a process,
	// so two callers cannot create two keys with one label.
	mu sync.Mutex
}

// NewPKCS11KeyStore loads the module, finds the token and logs in. Close it
// when done so the module's sessions are released.
func NewPKCS11KeyStore(cfg PKCS11Config) (*PKCS11KeyStore, error) {
	if cfg.ModulePath == "" || cfg.TokenLabel == "" {
		return nil, errors.New("pki: PKCS#11 key store needs a module path and a token label")
	}
	c, err := crypto11.Configure(&crypto11.Config{
		Path:       cfg.ModulePath,
		TokenLabel: cfg.TokenLabel,
		Pin:        cfg.PIN,
	})
	if err != nil {
		return nil, fmt.Errorf("pki: open PKCS#11 token %q with module %s: %w; check the module path, the token label and the PIN",
			cfg.TokenLabel, cfg.ModulePath, err)
	}
	return &PKCS11KeyStore{ctx: c}, nil
}

// Close logs out and releases the module.
func (s *PKCS11KeyStore) Close() error {
	return s.ctx.Close()
}

// Generate creates a key pair on the token.
func (s *PKCS11KeyStore) Generate(ctx context.Context, label string, alg KeyAlgorithm) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	existing, err := s.ctx.FindKeyPairs([]byte(label), []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pki: search PKCS#11 token for key %q: %w", label, err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("pki: PKCS#11 key %q: %w", label, ErrKeyExists)
	}

	id, lbl := []byte(label), []byte(label)
	var key crypto.Signer
	switch alg {
	case ECDSAP256:
		key, err = s.ctx.GenerateECDSAKeyPairWithLabel(id, lbl, elliptic.P256())
	case ECDSAP384:
		key, err = s.ctx.GenerateECDSAKeyPairWithLabel(id, lbl, elliptic.P384())
	case RSA3072:
		key, err = s.ctx.GenerateRSAKeyPairWithLabel(id, lbl, rsaBits)
	default:
		return nil, fmt.Errorf("pki: cannot generate key: unknown key algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: generate %s key %q on PKCS#11 token: %w", alg, label, err)
	}
	return key, nil
}

// Load finds the key pair with the given label.
func (s *PKCS11KeyStore) Load(ctx context.Context, label string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	keys, err := s.ctx.FindKeyPairs([]byte(label), []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pki: PKCS#11 key %q: %w: %w", label, ErrKeyUnreadable, err)
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("pki: no PKCS#11 key with label %q on the token: %w", label, ErrKeyNotFound)
	case 1:
		return keys[0], nil
	default:
		return nil, fmt.Errorf("pki: %d PKCS#11 keys share the label %q: %w; remove the duplicates with the token's tools", len(keys), label, ErrKeyUnreadable)
	}
}
