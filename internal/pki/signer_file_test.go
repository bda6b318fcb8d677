package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileKeyStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	ks := newTestKeyStore(t)
	key, err := ks.Generate(ctx, "ca-1", ECDSAP384)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(ks.Path("ca-1"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	data, _ := os.ReadFile(ks.Path("ca-1"))
	if !bytes.HasPrefix(data, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
		t.Errorf("key file is not an encrypted PKCS#8 PEM:\n%s", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(ks.Path("ca-1")))
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want just the key (temporary file left behind?)", len(entries))
	}

	loaded, err := ks.Load(ctx, "ca-1")
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("loaded key differs from generated key")
	}
	digest := sha256.Sum256([]byte("hello"))
	sig, err := loaded.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("signature by loaded key does not verify")
	}

	if _, err := ks.Generate(ctx, "ca-1", ECDSAP256); !errors.Is(err, ErrKeyExists) {
		t.Errorf("Generate over an existing key: err = %v, want ErrKeyExists", err)
	}
	if again, _ := ks.Load(ctx, "ca-1"); again == nil || !again.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Error("existing key was replaced")
	}
}

// TestFileKeyStoreOpenSSLInterop proves the files are the standard format:
// openssl reads ours with the default KDF cost, and we read openssl's.
func TestFileKeyStoreOpenSSLInterop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ks, err := NewFileKeyStore(dir, []byte(testPassphrase)) // default iterations
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.Generate(ctx, "interop", ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	out := openssl(t, false, "pkey", "-in", ks.Path("interop"), "-passin", "pass:"+testPassphrase, "-pubout")
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	want := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	if out != want {
		t.Errorf("openssl read a different public key:\n%s\nwant\n%s", out, want)
	}
	dump := openssl(t, false, "asn1parse", "-in", ks.Path("interop"))
	// openssl prints INTEGERs in hex: 0x0927C0 is DefaultPBKDF2Iterations.
	for _, s := range []string{":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc", "INTEGER           :0927C0"} {
		if !strings.Contains(dump, s) {
			t.Errorf("key file structure lacks %q:\n%s", s, dump)
		}
	}
	openssl(t, true, "pkey", "-in", ks.Path("interop"), "-passin", "pass:wrong", "-noout")

	// openssl 3 writes PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC by default.
	theirs := filepath.Join(dir, "from-openssl"+fileKeySuffix)
	openssl(t, false, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
		"-aes-256-cbc", "-pass", "pass:"+testPassphrase, "-out", theirs)
	if err := os.Chmod(theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := ks.Load(ctx, "from-openssl")
	if err != nil {
		t.Fatalf("cannot read openssl's key: %v", err)
	}
	if alg, err := algorithmOf(loaded.Public()); err != nil || alg != ECDSAP384 {
		t.Errorf("openssl key loaded as %q, %v", alg, err)
	}
}

func TestFileKeyStoreLoadErrors(t *testing.T) {
	ctx := context.Background()
	ks := newTestKeyStore(t)
	if _, err := ks.Generate(ctx, "good", ECDSAP256); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(ks.Path("good"))
	wrongPass, err := NewFileKeyStore(filepath.Dir(ks.Path("good")), []byte("not the passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := x509.MarshalPKCS8PrivateKey(newP256(t))
	block, _ := pem.Decode(good)
	flipped := bytes.Clone(block.Bytes)
	flipped[len(flipped)-20] ^= 0xff // inside the ciphertext

	write := func(label string, data []byte, mode os.FileMode) {
		p := ks.Path(label)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("garbage", []byte("this is not a key"), 0o600)
	write("unencrypted", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: plain}), 0o600)
	write("truncated", good[:len(good)/2], 0o600)
	write("bitflip", pem.EncodeToMemory(&pem.Block{Type: pemTypeEncryptedKey, Bytes: flipped}), 0o600)
	write("world-readable", good, 0o644)

	tests := []struct {
		name    string
		ks      *FileKeyStore
		label   string
		want    error
		message string
	}{
		{"wrong passphrase", wrongPass, "good", ErrKeyUnreadable, PassphraseEnv},
		{"garbage", ks, "garbage", ErrKeyUnreadable, "no PEM block"},
		{"unencrypted key", ks, "unencrypted", ErrKeyUnreadable, "ENCRYPTED PRIVATE KEY"},
		{"truncated", ks, "truncated", ErrKeyUnreadable, "intact"},
		{"corrupt ciphertext", ks, "bitflip", ErrKeyUnreadable, "intact"},
		{"readable by others", ks, "world-readable", ErrKeyUnreadable, "chmod 600"},
		{"missing", ks, "absent", ErrKeyNotFound, "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.ks.Load(ctx, tt.label)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.message) {
				t.Errorf("error %q does not mention %q", msg, tt.message)
			}
			if tt.want == ErrKeyUnreadable && !strings.Contains(msg, ks.Path(tt.label)) {
				t.Errorf("error %q does not name the file", msg)
			}
		})
	}
}

func TestFileKeyStoreRefusals(t *testing.T) {
	ctx := context.Background()
	if _, err := NewFileKeyStore(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), PassphraseEnv) {
		t.Errorf("empty passphrase: err = %v", err)
	}
	if _, err := NewFileKeyStore(t.TempDir(), []byte("x"), WithPBKDF2Iterations(10)); err == nil {
		t.Error("accepted 10 PBKDF2 iterations")
	}
	ks := newTestKeyStore(t)
	for _, label := range []string{"", "../escape", "a/b", ".hidden", "spa ce", strings.Repeat("x", 65)} {
		if _, err := ks.Generate(ctx, label, ECDSAP256); err == nil {
			t.Errorf("Generate accepted label %q", label)
		}
		if _, err := ks.Load(ctx, label); err == nil {
			t.Errorf("Load accepted label %q", label)
		}
	}
	if _, err := ks.Generate(ctx, "bad-alg", "ed448"); err == nil {
		t.Error("Generate accepted an unknown algorithm")
	}
	if _, err := os.Stat(ks.Path("bad-alg")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed Generate left a file behind")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ks.Generate(cancelled, "late", ECDSAP256); !errors.Is(err, context.Canceled) {
		t.Errorf("Generate with cancelled context: err = %v", err)
	}
}

func TestPassphraseFromEnvOrFile(t *testing.T) {
	const env = "MUSTER_TEST_CA_PASSPHRASE"
	dir := t.TempDir()
	withNewline := writeFile(t, dir, "pass", []byte("from-file\n"))
	withCRLF := writeFile(t, dir, "pass-crlf", []byte("from-file\r\n"))
	empty := writeFile(t, dir, "empty", []byte("\n"))

	tests := []struct {
		name, envValue, file string
		want                 string
		wantErr              string
	}{
		{name: "env", envValue: "from-env", want: "from-env"},
		{name: "file", file: withNewline, want: "from-file"},
		{name: "file with CRLF", file: withCRLF, want: "from-file"},
		{name: "both", envValue: "from-env", file: withNewline, wantErr: "set only one"},
		{name: "neither", wantErr: env},
		{name: "empty file", file: empty, wantErr: "empty"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "passphrase file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.envValue)
			got, err := PassphraseFromEnvOrFile(env, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want mention of %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
