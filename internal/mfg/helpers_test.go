package mfg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"testing"
)

// goodBOM is a small valid CycloneDX 1.6 document, compact so that it is the
// same bytes in CSV cells and JSON lines.
const goodBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"type":"device","name":"mainboard","version":"r3"}]}`

// otherBOM is another valid document, for model BOMs.
const otherBOM = `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"firmware","name":"boot","version":"2.0"}]}`

// csvQuote quotes a CSV cell.
func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// newCSRPEM returns a real PEM certificate request for cn.
func newCSRPEM(t testing.TB, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// readAll reads every row of a manifest.
func readAll(t testing.TB, manifest string, format Format) []Row {
	t.Helper()
	mr, err := NewManifestReader(strings.NewReader(manifest), format)
	if err != nil {
		t.Fatalf("NewManifestReader: %v", err)
	}
	var rows []Row
	for {
		row, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		rows = append(rows, row)
	}
}

// rowCode is the RowError code of a row, or "" when it parsed.
func rowCode(t testing.TB, r Row) string {
	t.Helper()
	if r.Err == nil {
		return ""
	}
	var re *RowError
	if !errors.As(r.Err, &re) {
		t.Fatalf("line %d: Err is %T, want *RowError", r.Line, r.Err)
	}
	if re.Line != r.Line {
		t.Errorf("RowError.Line = %d, Row.Line = %d", re.Line, r.Line)
	}
	return re.Code
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
