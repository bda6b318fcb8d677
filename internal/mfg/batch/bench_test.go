package batch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
)

// TestBenchBirthIssuance measures birth certificate issuance through the
// batch path (manifest rows, CSR checks, issuing, the registry write)
// against bare x509.CreateCertificate on one goroutine, in the same run. The
// issue's goal is a ratio of at least 0.8. It takes a while, so it runs only
// when asked:
//
//	MUSTER_BENCH=1 go test -run TestBenchBirthIssuance -v ./internal/mfg/batch/
//
// MUSTER_BENCH_ROWS sets the batch size (default 20,000).
func TestBenchBirthIssuance(t *testing.T) {
	if os.Getenv("MUSTER_BENCH") != "1" {
		t.Skip("MUSTER_BENCH not set: issuance benchmark skipped")
	}
	n := 20_000
	if v := os.Getenv("MUSTER_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	manifest := benchManifest(t, n)
	rawN := min(n, 5000)
	cpu0 := cpuTime(t)
	raw := rawCreateCertificateRate(t, rawN)
	rawCPU := (cpuTime(t) - cpu0) / time.Duration(rawN)

	l := newLine(t, Options{})
	mr, err := mfg.NewManifestReader(strings.NewReader(manifest), mfg.FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	start, cpu0 := time.Now(), cpuTime(t)
	sum, err := l.p.Run(context.Background(), Submission{ID: "bench", Factory: l.f, KeyMode: mfg.KeyModeCSR, Actor: "bench/b"}, mr,
		func([]mfg.Result) error { return nil })
	elapsed, batchCPU := time.Since(start), (cpuTime(t)-cpu0)/time.Duration(n)
	if err != nil || sum.OK != n {
		t.Fatalf("Run: %v, summary %+v", err, sum)
	}
	batch := float64(n) / elapsed.Seconds()
	cores := runtime.GOMAXPROCS(0)
	t.Logf("GOMAXPROCS=%d, %d rows", cores, n)
	t.Logf("raw x509.CreateCertificate, one goroutine: %8.0f certificates/s (%v CPU each)", raw, rawCPU.Round(time.Microsecond))
	t.Logf("batch path (CSR checks + issue + registry write): %8.0f certificates/s in %v (%v CPU each)",
		batch, elapsed.Round(time.Millisecond), batchCPU.Round(time.Microsecond))
	t.Logf("ratio: %.2f (goal >= 0.80)", batch/raw)
	// On a machine shared with other work, wall-clock rates say more about
	// the neighbours than about Muster; CPU time per certificate does not.
	t.Logf("ratio from CPU time on %d idle cores: %.2f", cores, float64(cores)*float64(rawCPU)/float64(batchCPU))
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawCreateCertificateRate is pki's BenchmarkCreateCertificateRaw as a
// rate: an in-memory P-256 CA key, a fixed template, no checks.
func rawCreateCertificateRate(t testing.TB, n int) float64 {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "device"},
		NotBefore: now, NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	start := time.Now()
	for range n {
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, leaf.Public(), caKey); err != nil {
			t.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// benchManifest is a JSON lines manifest of n units with CSRs, as devices
// would send them.
func benchManifest(t testing.TB, n int) string {
	return csrRows(t, 0, n)
}
