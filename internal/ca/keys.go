package ca

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// KeyVault keeps encrypted CA keys in the database; *store.Store has it.
type KeyVault interface {
	PutCAKey(ctx context.Context, label string, encryptedPEM []byte) error
	CAKey(ctx context.Context, label string) ([]byte, error)
}

// SharedKeys is the key store of nodes sharing a database with key files:
// every key is a passphrase-encrypted file in the node's key directory and
// the same encrypted bytes in the database. A node that lacks a file (a new
// node, or a key another node generated for a factory or a rotation)
// fetches it from the database and keeps the file; a node that has a file
// the database lacks (a deployment older than the ca_keys table) uploads it
// when it loads it. The passphrase never goes to the database, so every
// node must be given the same one. See docs/decisions/0013-many-nodes.md.
type SharedKeys struct {
	files *pki.FileKeyStore
	vault KeyVault
}

// NewSharedKeys returns the key store over a node's key files and the
// database.
func NewSharedKeys(files *pki.FileKeyStore, vault KeyVault) *SharedKeys {
	return &SharedKeys{files: files, vault: vault}
}

var _ pki.KeyStore = (*SharedKeys)(nil)

// Generate creates a key file and stores it in the database before it
// returns, so the CA record that names it (committed after) is never
// visible to another node without its key.
func (k *SharedKeys) Generate(ctx context.Context, label string, alg pki.KeyAlgorithm) (crypto.Signer, error) {
	key, err := k.files.Generate(ctx, label, alg)
	if err != nil {
		return nil, err
	}
	if err := k.upload(ctx, label); err != nil {
		return nil, err
	}
	return key, nil
}

// Load returns the key from the node's file, uploading it when the
// database lacks it, or else from the database, keeping the file.
func (k *SharedKeys) Load(ctx context.Context, label string) (crypto.Signer, error) {
	key, err := k.files.Load(ctx, label)
	switch {
	case err == nil:
		if err := k.upload(ctx, label); err != nil {
			return nil, err
		}
		return key, nil
	case !errors.Is(err, pki.ErrKeyNotFound):
		return nil, err
	}
	data, derr := k.vault.CAKey(ctx, label)
	if errors.Is(derr, store.ErrNotFound) {
		return nil, err // neither here nor in the database
	}
	if derr != nil {
		return nil, fmt.Errorf("ca: fetch CA key %q from the database: %w", label, derr)
	}
	key, err = k.files.Import(ctx, label, data)
	if errors.Is(err, pki.ErrKeyUnreadable) {
		return nil, fmt.Errorf("%w; the CA keys in the database were encrypted with another node's CA passphrase: give every node the same one (%s or --ca-passphrase-file; a first node that generated it keeps it in its data directory as ca.passphrase)",
			err, pki.PassphraseEnv)
	}
	return key, err
}

// upload stores the key file of label in the database; a label stored
// already is left as it is.
func (k *SharedKeys) upload(ctx context.Context, label string) error {
	data, err := k.files.Export(ctx, label)
	if err != nil {
		return err
	}
	if err := k.vault.PutCAKey(ctx, label, data); err != nil {
		return fmt.Errorf("ca: share CA key %q through the database: %w", label, err)
	}
	return nil
}
