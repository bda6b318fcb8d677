package pki

import (
	"context"
	"crypto"
	"errors"
	"testing"
)

// TestExportImport: an exported key imports into another directory with
// the same passphrase, again without harm, never over another key, and
// never with another passphrase.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	newStore := func(pass string) *FileKeyStore {
		s, err := NewFileKeyStore(t.TempDir(), []byte(pass), WithPBKDF2Iterations(1000))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := newStore("pass")
	key, err := a.Generate(ctx, "ca-1", DefaultKeyAlgorithm)
	if err != nil {
		t.Fatal(err)
	}
	pemA, err := a.Export(ctx, "ca-1")
	if err != nil {
		t.Fatal(err)
	}
	b := newStore("pass")
	for range 2 { // the second import finds the same bytes in place
		got, err := b.Import(ctx, "ca-1", pemA)
		if err != nil {
			t.Fatalf("Import: %v", err)
		}
		if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatal("imported another key")
		}
	}
	if _, err := b.Load(ctx, "ca-1"); err != nil {
		t.Fatalf("Load after Import: %v", err)
	}
	if _, err := b.Generate(ctx, "ca-2", DefaultKeyAlgorithm); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Import(ctx, "ca-2", pemA); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("Import over another key: err = %v, want ErrKeyExists", err)
	}
	c := newStore("other")
	if _, err := c.Import(ctx, "ca-1", pemA); !errors.Is(err, ErrKeyUnreadable) {
		t.Fatalf("Import with another passphrase: err = %v, want ErrKeyUnreadable", err)
	}
	if _, err := c.Export(ctx, "ca-1"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("a refused import left a file: Export err = %v", err)
	}
	if _, err := a.Import(ctx, "../escape", pemA); err == nil {
		t.Fatal("Import accepted a label with a path")
	}
}
