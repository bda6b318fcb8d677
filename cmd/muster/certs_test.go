package main

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

func TestCLICerts(t *testing.T) {
	isolateEnv(t)
	t.Setenv("MUSTER_PKI_URL", "")
	dir, st := startAPIStore(t)
	p := revocationtest.NewPKI(t, "acme")
	d := p.Device(t, st)
	birth := p.BirthCredential(t, st, d)
	op := p.OperationalCredential(t, st, d)

	// The PKI listener, recorded in the data directory as serve does.
	svc, err := revocation.New(revocation.Config{Store: st, Issuers: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	pkiSrv := httptest.NewServer(revocation.PKIHandler(svc))
	t.Cleanup(pkiSrv.Close)
	writeFile(t, filepath.Join(dir, pkiAddrFile), strings.TrimPrefix(pkiSrv.URL, "http://")+"\n")

	out := cli(t, dir, "certs", "list", "--device", d.ID)
	if !strings.HasPrefix(out, "CA") || !strings.Contains(out, birth.Certificate.SerialNumber.Text(16)) || !strings.Contains(out, "operational") {
		t.Fatalf("certs list: %s", out)
	}

	// openssl prints serials upper case with colons; that works too.
	serial := strings.ToUpper(birth.Certificate.SerialNumber.Text(16))
	revoked := cliJSON[client.Certificate](t, dir, "certs", "revoke", "--ca", revocationtest.ManufacturingID, "--serial", serial, "--reason", "keyCompromise")
	if revoked.RevokedAt == nil || revoked.RevokeReasonName != "keyCompromise" {
		t.Fatalf("certs revoke --ca: %+v", revoked)
	}
	out = cli(t, dir, "certs", "revoke", "--device", d.ID, "--reason", "cessationOfOperation")
	if !strings.Contains(out, "Revoked 1 certificate(s)") || !strings.Contains(out, "cessationOfOperation") {
		t.Fatalf("certs revoke --device: %s", out)
	}
	shown := cliJSON[client.Certificate](t, dir, "certs", "show", "--ca", revocationtest.OperationalID, "--serial", op.Certificate.SerialNumber.Text(16))
	if shown.RevokeReasonName != "cessationOfOperation" {
		t.Fatalf("certs show: %+v", shown)
	}

	// This API revokes through the store, as another node's would: the
	// PKI node renews the CRL when its refresh sees the revocation.
	crlFile := filepath.Join(t.TempDir(), "op.crl")
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		out = cli(t, dir, "certs", "crl", "--ca", revocationtest.OperationalID, "--out", crlFile)
		if strings.Contains(out, "1 revoked certificate(s)") {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("certs crl: %s", out)
		}
	}
	der, err := os.ReadFile(crlFile)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(op.Certificate.SerialNumber) != 0 {
		t.Fatalf("CRL written = %+v, %v", crl, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"certs", "revoke", "--device", d.ID}, `required flag(s) "reason" not set`},
		{[]string{"certs", "revoke", "--reason", "superseded"}, "at least one of the flags in the group [device ca] is required"},
		{[]string{"certs", "revoke", "--device", d.ID, "--ca", "x", "--serial", "1", "--reason", "superseded"}, "if any flags in the group [device ca] are set none of the others can be"},
		{[]string{"certs", "revoke", "--ca", "x", "--reason", "superseded"}, "if any flags in the group [ca serial] are set they must all be set"},
		{[]string{"certs", "revoke", "--device", d.ID, "--reason", "stolen"}, "unknown revocation reason"},
		{[]string{"certs", "revoke", "--ca", revocationtest.OperationalID, "--serial", "abc", "--reason", "superseded"}, "code not_found"},
		{[]string{"certs", "crl", "--ca", "ca-nope", "--out", crlFile}, "HTTP 404"},
	} {
		stdout, stderr, code := runCLI(t, append([]string{"--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("muster %s: exit %d, stderr %q, want it to mention %q (stdout %q)", strings.Join(tc.args, " "), code, stderr, tc.want, stdout)
		}
	}
}
