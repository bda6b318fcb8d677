package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// pemTypeEncryptedKey is the PEM block type of encrypted PKCS#8 keys.
const pemTypeEncryptedKey = "ENCRYPTED PRIVATE KEY"

// fileKeySuffix is appended to a label to name its key file.
const fileKeySuffix = ".key.pem"

// FileKeyStore keeps CA keys as passphrase-encrypted PKCS#8 PEM files, one
// per label, in a directory. The files are the format `openssl pkey` reads,
// so an operator can back them up, inspect or move them with standard tools.
type FileKeyStore struct {
	dir        string
	passphrase []byte
	iterations int
}

// FileKeyStoreOption configures a FileKeyStore.
type FileKeyStoreOption func(*FileKeyStore)

// WithPBKDF2Iterations sets the PBKDF2 iteration count for keys written by
// the store (DefaultPBKDF2Iterations otherwise). Lower counts make tests
// fast; the store refuses fewer than 1000.
func WithPBKDF2Iterations(n int) FileKeyStoreOption {
	return func(s *FileKeyStore) { s.iterations = n }
}

// NewFileKeyStore opens (creating if needed, mode 0700) a key directory.
// The passphrase encrypts new keys and decrypts existing ones; an empty
// passphrase is refused because it would leave CA keys effectively in clear.
func NewFileKeyStore(dir string, passphrase []byte, opts ...FileKeyStoreOption) (*FileKeyStore, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("pki: empty CA key passphrase: set %s or a passphrase file", PassphraseEnv)
	}
	s := &FileKeyStore{dir: dir, passphrase: slices.Clone(passphrase), iterations: DefaultPBKDF2Iterations}
	for _, opt := range opts {
		opt(s)
	}
	if s.iterations < minPBKDF2Iterations || s.iterations > maxPBKDF2Iterations {
		return nil, fmt.Errorf("pki: PBKDF2 iteration count %d out of range %d..%d", s.iterations, minPBKDF2Iterations, maxPBKDF2Iterations)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create CA key directory: %w", err)
	}
	return s, nil
}

// Path returns the file that holds the key for label.
func (s *FileKeyStore) Path(label string) string {
	return filepath.Join(s.dir, label+fileKeySuffix)
}

// Generate creates a key, writes it encrypted with mode 0600 and returns it.
// The file appears atomically: a crash never leaves a truncated key under
// the final name, and an existing key is never replaced.
func (s *FileKeyStore) Generate(ctx context.Context, label string, alg KeyAlgorithm) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	path := s.Path(label)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("pki: %s: %w", path, ErrKeyExists)
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA key: %w", err)
	}
	der, err := encryptPKCS8(plain, s.passphrase, s.iterations)
	if err != nil {
		return nil, fmt.Errorf("pki: encrypt CA key: %w", err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(&pem.Block{Type: pemTypeEncryptedKey, Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

// Load reads and decrypts the key for label.
func (s *FileKeyStore) Load(ctx context.Context, label string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	path := s.Path(label)
	data, err := readPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pki: no CA key %q at %s: %w", label, path, ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: CA key file %s: %w: %w", path, ErrKeyUnreadable, err)
	}
	key, err := s.decode(data)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key file %s: %w: %w; check that %s (or the passphrase file) holds the passphrase the key was written with, and that the file is intact",
			path, ErrKeyUnreadable, err, PassphraseEnv)
	}
	return key, nil
}

// readPrivateFile reads a key file, refusing (like ssh) files that other
// users can read: the passphrase is then the only protection left, and it
// is often weaker than it should be. The mode is checked on the open file,
// so it is the mode of the bytes actually read.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o lets other users read it; run chmod 600 %s", perm, path)
	}
	return io.ReadAll(f)
}

// decode turns the file contents into a signer.
func (s *FileKeyStore) decode(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != pemTypeEncryptedKey {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemTypeEncryptedKey)
	}
	plain, err := decryptPKCS8(block.Bytes, s.passphrase)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		// Garbage that happens to have valid padding lands here.
		return nil, errWrongPassphrase
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return signer, nil
}

// writeExclusive writes data to a temporary file in the target directory
// and hard-links it into place, which fails if the target exists.
func writeExclusive(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-key-*") // CreateTemp uses mode 0600.
	if err != nil {
		return fmt.Errorf("pki: write CA key: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("pki: write CA key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("pki: write CA key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("pki: %s: %w", path, ErrKeyExists)
		}
		return fmt.Errorf("pki: write CA key: %w", err)
	}
	// Persist the directory entry too, or a crash could lose the new key
	// after a certificate for it was already handed out.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pki: sync CA key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pki: sync CA key directory: %w", err)
	}
	return nil
}
