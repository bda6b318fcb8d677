package mfg

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// TestGenerateManifestReadsBack generates manifests in both formats and
// reads them back: consecutive serials, a CSR for each unit whose key is in
// the key directory.
func TestGenerateManifestReadsBack(t *testing.T) {
	for _, format := range []Format{FormatCSV, FormatJSONL} {
		t.Run(string(format), func(t *testing.T) {
			keys := t.TempDir()
			var b bytes.Buffer
			o := GenerateOptions{Model: "m1", Count: 3, Start: 41, Format: format, WithCSR: true, KeyDir: keys}
			if err := GenerateManifest(&b, o); err != nil {
				t.Fatal(err)
			}
			rows := readAll(t, b.String(), format)
			if len(rows) != 3 || rows[0].Serial != "SN-000041" || rows[2].Serial != "SN-000043" || rows[1].Model != "m1" ||
				len(rows[0].QC) != 1 || rows[0].QC[0].Result != "pass" {
				t.Fatalf("rows = %+v", rows)
			}
			der, err := DecodeCSR(rows[1].CSR)
			if err != nil {
				t.Fatal(err)
			}
			csr, _ := x509.ParseCertificateRequest(der)
			keyPEM, err := os.ReadFile(filepath.Join(keys, "SN-000042.key"))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(keyPEM)
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil || !key.(*ecdsa.PrivateKey).PublicKey.Equal(csr.PublicKey) {
				t.Fatalf("the key file does not hold the CSR's key: %v", err)
			}
			if fi, _ := os.Stat(filepath.Join(keys, "SN-000042.key")); fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
	if err := GenerateManifest(&bytes.Buffer{}, GenerateOptions{Model: "m 1", Count: 1}); err == nil {
		t.Error("an invalid model was accepted")
	}
}
