package client

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

func TestRealAPICertificates(t *testing.T) {
	r := startRealAPI(t)
	ctx := t.Context()
	p := revocationtest.NewPKI(t, "acme")
	d := p.Device(t, r.st)
	birth := p.BirthCredential(t, r.st, d)
	op := p.OperationalCredential(t, r.st, d)
	serial := birth.Certificate.SerialNumber.Text(16)

	certs, err := r.admin.DeviceCertificates(ctx, d.ID)
	if err != nil || len(certs) != 2 {
		t.Fatalf("DeviceCertificates = %+v, %v", certs, err)
	}
	c, err := r.admin.Certificate(ctx, revocationtest.ManufacturingID, serial)
	if err != nil || c.Kind != "birth" || c.DeviceID != d.ID || c.RevokedAt != nil || c.NotAfter.Before(time.Now()) {
		t.Fatalf("Certificate = %+v, %v", c, err)
	}

	operator := r.clientWithRole(t, RoleOperator, "")
	revoked, err := operator.RevokeCertificate(ctx, revocationtest.ManufacturingID, serial, ReasonKeyCompromise)
	if err != nil || revoked.RevokedAt == nil || revoked.RevokeReasonName != ReasonKeyCompromise || *revoked.RevokeReason != 1 {
		t.Fatalf("RevokeCertificate = %+v, %v", revoked, err)
	}
	if _, err := operator.RevokeCertificate(ctx, revocationtest.ManufacturingID, serial, "stolen"); !HasCode(err, CodeValidationFailed) {
		t.Errorf("RevokeCertificate(unknown reason) = %v, want %s", err, CodeValidationFailed)
	}
	if _, err := operator.RevokeCertificate(ctx, revocationtest.ManufacturingID, "abc", ReasonSuperseded); !HasCode(err, CodeNotFound) {
		t.Errorf("RevokeCertificate(unknown serial) = %v, want %s", err, CodeNotFound)
	}
	auditor := r.clientWithRole(t, RoleAuditor, "")
	if _, err := auditor.RevokeDeviceCertificates(ctx, d.ID, ReasonSuperseded); !HasCode(err, CodeForbidden) {
		t.Errorf("RevokeDeviceCertificates as auditor = %v, want %s", err, CodeForbidden)
	}
	all, err := operator.RevokeDeviceCertificates(ctx, d.ID, ReasonCessationOfOperation)
	if err != nil || all.Revoked != 1 || len(all.Items) != 2 {
		t.Fatalf("RevokeDeviceCertificates = %+v, %v", all, err)
	}
	history, err := auditor.History(ctx, d.ID)
	if err != nil || len(history) != 3 || history[2].Type != fleet.EventCertificateRevoked {
		t.Fatalf("History = %+v, %v", history, err)
	}

	// The CRL comes from the PKI address, with a client made for it.
	svc, err := revocation.New(revocation.Config{Store: r.st, Issuers: p})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = svc.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for start := time.Now(); svc.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 3*time.Second {
			t.Fatal("revocation service did not load")
		}
	}
	pkiSrv := httptest.NewServer(revocation.PKIHandler(svc))
	t.Cleanup(pkiSrv.Close)
	pkiClient, err := New(pkiSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	der, err := pkiClient.CRL(ctx, revocationtest.OperationalID)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(op.Certificate.SerialNumber) != 0 {
		t.Fatalf("CRL entries = %+v", crl.RevokedCertificateEntries)
	}
	var apiErr *APIError
	if _, err := pkiClient.CRL(ctx, "ca-nope"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("CRL(unknown CA) = %v, want HTTP 404", err)
	}
}
