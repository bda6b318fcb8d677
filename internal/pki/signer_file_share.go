package pki

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Export returns the key file of label as stored: encrypted PKCS#8 PEM,
// which only this store's passphrase opens. Nodes sharing a database keep
// these bytes there, so that each can Import the keys another generated
// (docs/decisions/0013-many-nodes.md).
func (s *FileKeyStore) Export(ctx context.Context, label string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	data, err := readPrivateFile(s.Path(label))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pki: no CA key %q at %s: %w", label, s.Path(label), ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: CA key file %s: %w: %w", s.Path(label), ErrKeyUnreadable, err)
	}
	return data, nil
}

// Import writes an exported key under label and returns it. The key must
// open with this store's passphrase, or nothing is written and the error
// wraps ErrKeyUnreadable: a node with another passphrase would otherwise
// keep a file it can never read. A file holding the same bytes already is
// not an error (two loads racing); one holding other bytes is ErrKeyExists.
func (s *FileKeyStore) Import(ctx context.Context, label string, encryptedPEM []byte) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	key, err := s.decode(encryptedPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key %q: %w: %w", label, ErrKeyUnreadable, err)
	}
	err = writeExclusive(s.Path(label), encryptedPEM)
	if errors.Is(err, ErrKeyExists) {
		have, rerr := os.ReadFile(s.Path(label))
		if rerr == nil && bytes.Equal(have, encryptedPEM) {
			return key, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return key, nil
}
