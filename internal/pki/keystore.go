package pki

import (
	"context"
	"crypto"
	"errors"
	"fmt"
)

// KeyStore keeps CA private keys. Keys are addressed by a label chosen by
// the caller; the private half never leaves the store except as a
// crypto.Signer, so a hardware-backed store can keep it non-exportable.
type KeyStore interface {
	// Generate creates a new key under label. It fails with ErrKeyExists
	// rather than replacing a key, because losing a CA key is unrecoverable.
	Generate(ctx context.Context, label string, alg KeyAlgorithm) (crypto.Signer, error)
	// Load returns the key stored under label, or an error wrapping
	// ErrKeyNotFound or ErrKeyUnreadable.
	Load(ctx context.Context, label string) (crypto.Signer, error)
}

// Key store errors, for errors.Is.
var (
	// ErrKeyUnreadable means a key exists but cannot be decrypted or parsed:
	// usually a wrong passphrase or PIN, sometimes a corrupt file.
	ErrKeyUnreadable = errors.New("CA key unreadable")
	// ErrKeyNotFound means no key exists under the label.
	ErrKeyNotFound = errors.New("CA key not found")
	// ErrKeyExists means Generate was asked to overwrite an existing key.
	ErrKeyExists = errors.New("CA key already exists")
)

// maxLabelLen bounds labels so they stay usable as file names and as
// PKCS#11 CKA_LABEL values on tokens with small attribute limits.
const maxLabelLen = 64

// validateLabel accepts labels made of letters, digits, '.', '_' and '-',
// not starting with '.'. The file store uses labels as file names, so this
// rules out path traversal; the PKCS#11 store applies the same rule so a
// label means the same thing in either backend.
func validateLabel(label string) error {
	if label == "" || len(label) > maxLabelLen {
		return fmt.Errorf("pki: invalid key label %q: must be 1 to %d characters", label, maxLabelLen)
	}
	if label[0] == '.' {
		return fmt.Errorf("pki: invalid key label %q: must not start with '.'", label)
	}
	for _, r := range label {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("pki: invalid key label %q: use only letters, digits, '.', '_' and '-'", label)
		}
	}
	return nil
}
