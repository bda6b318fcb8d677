package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// insertCert records a certificate row the way issuance does, with plain
// SQL so these tests depend on nothing but the 0002 schema.
func insertCert(t *testing.T, s *Store, caID, serial, deviceID, kind string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	_, err := s.DB().ExecContext(t.Context(), s.d.rebind(`INSERT INTO certificates
		(ca_id, serial, device_id, kind, fingerprint, not_before, not_after, cert_pem, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		caID, serial, deviceID, kind, "fp-"+caID+"-"+serial, now.Add(-time.Hour), now.Add(24*time.Hour), "PEM", now)
	if err != nil {
		t.Fatalf("insert certificate %s/%s: %v", caID, serial, err)
	}
}

func mustStatus(t *testing.T, s *Store, caID, serial string) *Certificate {
	t.Helper()
	st, err := s.CertificateStatus(t.Context(), caID, serial)
	if err != nil {
		t.Fatalf("CertificateStatus(%s, %s): %v", caID, serial, err)
	}
	return st
}

func TestRevokeCertificate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		insertCert(t, s, "ca-mfg", "4a1f", d.ID, "birth")
		insertCert(t, s, "ca-op", "4a1f", d.ID, "operational")

		if st := mustStatus(t, s, "ca-mfg", "4a1f"); (st.RevokedAt != nil) || st.DeviceID != d.ID || st.Kind != "birth" {
			t.Fatalf("status before revocation = %+v", st)
		}
		// Any serial spelling finds the certificate: openssl prints 4A:1F.
		if err := s.RevokeCertificate(ctx, "ca-mfg", "00:4A:1F", 1, "operator/ops"); err != nil {
			t.Fatalf("RevokeCertificate: %v", err)
		}
		st := mustStatus(t, s, "ca-mfg", "4a1f")
		if !(st.RevokedAt != nil) || *st.RevokeReason != 1 {
			t.Fatalf("status after revocation = %+v", st)
		}
		mustEqual(t, "other CA's certificate with the same serial revoked", (mustStatus(t, s, "ca-op", "4a1f").RevokedAt != nil), false)

		evs := mustVerify(t, s, d.ID, 2)
		mustEqual(t, "event type", evs[1].Type, fleet.EventCertificateRevoked)
		mustEqual(t, "event actor", evs[1].Actor, "operator/ops")
		var data map[string]any
		if err := json.Unmarshal(evs[1].Data, &data); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "event data", data, map[string]any{"caId": "ca-mfg", "serial": "4a1f", "kind": "birth", "reason": float64(1)})
		got, err := s.GetDevice(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "device version after revocation", got.Version, d.Version)

		// Idempotent: no second event, no second feed position, the first
		// reason kept.
		if err := s.RevokeCertificate(ctx, "ca-mfg", "4a1f", 4, "operator/ops"); err != nil {
			t.Fatalf("second RevokeCertificate: %v", err)
		}
		mustVerify(t, s, d.ID, 2)
		mustEqual(t, "reason after second revocation", *mustStatus(t, s, "ca-mfg", "4a1f").RevokeReason, 1)
		refs, head, err := s.RevokedSince(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "feed", refs, []RevokedRef{{CAID: "ca-mfg", Serial: "4a1f", Seq: 1}})
		mustEqual(t, "feed head", head, int64(1))

		// The history keeps chaining when the device changes afterwards.
		if _, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
			d.Attributes["after"] = "revocation"
			return &Change{Type: fleet.EventUpdated}, nil
		}); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, s, d.ID, 3)
	})
}

func TestRevokeCertificateBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		insertCert(t, s, "ca-mfg", "1", d.ID, "birth")
		for _, tc := range []struct {
			caID, serial string
			reason       int
			field        string
			notFound     bool
		}{
			{caID: "ca-mfg", serial: "2", notFound: true},
			{caID: "ca-other", serial: "1", notFound: true},
			{caID: "ca-mfg", serial: "xyz", field: "serial"},
			{caID: "ca-mfg", serial: "-1", field: "serial"},
			{caID: "ca-mfg", serial: "", field: "serial"},
			{caID: "ca-mfg", serial: "1" + strings.Repeat("0", 40), field: "serial"}, // 21 octets
			{caID: "ca-mfg", serial: strings.Repeat("0", 65) + "1", field: "serial"},
			{caID: "ca-mfg", serial: "1", reason: 6, field: "reason"}, // certificateHold
			{caID: "ca-mfg", serial: "1", reason: 7, field: "reason"},
			{caID: "ca-mfg", serial: "1", reason: -1, field: "reason"},
			{caID: "ca-mfg", serial: "1", reason: 11, field: "reason"},
		} {
			err := s.RevokeCertificate(ctx, tc.caID, tc.serial, tc.reason, "op")
			var fe *fleet.FieldError
			switch {
			case tc.notFound && !errors.Is(err, ErrNotFound):
				t.Errorf("RevokeCertificate(%s, %q) = %v, want ErrNotFound", tc.caID, tc.serial, err)
			case !tc.notFound && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("RevokeCertificate(%s, %q, %d) = %v, want a FieldError on %s", tc.caID, tc.serial, tc.reason, err, tc.field)
			}
		}
		if _, err := s.RevokeDeviceCertificates(ctx, d.ID, 8, "op"); err == nil {
			t.Error("RevokeDeviceCertificates with reason 8 succeeded")
		}
		if _, err := s.RevokeDeviceCertificates(ctx, "dev_nope", 0, "op"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeDeviceCertificates(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.CertificateStatus(ctx, "ca-mfg", "2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CertificateStatus(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.CertificateStatus(ctx, "ca-mfg", "not hex"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CertificateStatus(bad serial) = %v, want ErrNotFound", err)
		}
		mustVerify(t, s, d.ID, 1)
		var revoked int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL").Scan(&revoked); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "revoked certificates", revoked, 0)
		mustEqual(t, "fleet log", countRows(t, s, "events", "subject", fleet.FleetSubject), 0)
	})
}

func TestRevokeDeviceCertificates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		other := mustCreate(t, s, newTestDevice("SN-2"))
		insertCert(t, s, "ca-mfg", "a1", d.ID, "birth")
		insertCert(t, s, "ca-op", "b1", d.ID, "operational")
		insertCert(t, s, "ca-op", "b2", d.ID, "operational")
		insertCert(t, s, "ca-op", "c1", other.ID, "operational")
		if err := s.RevokeCertificate(ctx, "ca-op", "b1", 4, "op"); err != nil {
			t.Fatal(err)
		}

		n, err := s.RevokeDeviceCertificates(ctx, d.ID, 1, "admin/root")
		if err != nil || n != 2 {
			t.Fatalf("RevokeDeviceCertificates = %d, %v, want 2", n, err)
		}
		evs := mustVerify(t, s, d.ID, 4)
		for _, e := range evs[1:] {
			mustEqual(t, "event type", e.Type, fleet.EventCertificateRevoked)
		}
		mustEqual(t, "superseded certificate keeps its reason", *mustStatus(t, s, "ca-op", "b1").RevokeReason, 4)
		mustEqual(t, "birth certificate reason", *mustStatus(t, s, "ca-mfg", "a1").RevokeReason, 1)
		mustEqual(t, "other device untouched", (mustStatus(t, s, "ca-op", "c1").RevokedAt != nil), false)
		mustVerify(t, s, other.ID, 1)

		n, err = s.RevokeDeviceCertificates(ctx, d.ID, 1, "admin/root")
		if err != nil || n != 0 {
			t.Fatalf("second RevokeDeviceCertificates = %d, %v, want 0", n, err)
		}
		mustVerify(t, s, d.ID, 4)

		refs, head, err := s.RevokedSince(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "feed after 1", len(refs), 2)
		mustEqual(t, "feed head", head, int64(3))
		mustEqual(t, "feed order", []int64{refs[0].Seq, refs[1].Seq}, []int64{2, 3})
		if refs, head, err := s.RevokedSince(ctx, head); err != nil || len(refs) != 0 || head != 3 {
			t.Fatalf("RevokedSince(head) = %v, %d, %v", refs, head, err)
		}

		byCA, err := s.RevokedByCA(ctx, "ca-op")
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "CRL entries of ca-op", len(byCA), 2)
		mustEqual(t, "CRL entry order", []string{byCA[0].Serial, byCA[1].Serial}, []string{"b1", "b2"})
		if byCA[0].RevokedAt.IsZero() || byCA[0].Reason != 4 {
			t.Errorf("CRL entry = %+v", byCA[0])
		}
		empty, err := s.RevokedByCA(ctx, "ca-none")
		if err != nil || empty == nil || len(empty) != 0 {
			t.Errorf("RevokedByCA(no revocations) = %v, %v, want empty", empty, err)
		}
	})
}

// A certificate of no registered device (a server certificate) is
// recorded in the fleet audit log instead.
func TestRevokeServerCertificate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		insertCert(t, s, "ca-server", "5e", "", "server")
		if err := s.RevokeCertificate(t.Context(), "ca-server", "5e", 5, "admin/root"); err != nil {
			t.Fatal(err)
		}
		evs := mustVerify(t, s, fleet.FleetSubject, 1)
		mustEqual(t, "fleet event", evs[0].Type, fleet.EventCertificateRevoked)
	})
}

// Concurrent revocations get distinct, gap-free feed positions, and the
// device's chain stays intact while they interleave with updates.
func TestRevokeConcurrently(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		const n = 12
		for i := range n {
			insertCert(t, s, "ca-op", fmt.Sprintf("%x", 0x100+i), d.ID, "operational")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				errs <- s.RevokeCertificate(ctx, "ca-op", fmt.Sprintf("%x", 0x100+i), 0, "op")
			})
			wg.Go(func() {
				_, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
					d.Attributes[fmt.Sprint("k", i)] = "v"
					return &Change{}, nil
				})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		refs, head, err := s.RevokedSince(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "feed head", head, int64(n))
		for i, r := range refs {
			mustEqual(t, "feed position", r.Seq, int64(i+1))
		}
		mustVerify(t, s, d.ID, 1+2*n)
	})
}

func TestCRLs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if _, err := s.LatestCRL(ctx, "ca-op"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LatestCRL before any = %v, want ErrNotFound", err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		save := func(number int64, der string) bool {
			t.Helper()
			ok, err := s.SaveCRL(ctx, CRL{CAID: "ca-op", Number: number, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), DER: []byte(der)})
			if err != nil {
				t.Fatalf("SaveCRL(%d): %v", number, err)
			}
			return ok
		}
		mustEqual(t, "first CRL saved", save(1, "one"), true)
		mustEqual(t, "CRL with the same number saved", save(1, "other one"), false)
		mustEqual(t, "newer CRL saved", save(3, "three"), true)
		mustEqual(t, "older CRL saved", save(2, "two"), false)
		crl, err := s.LatestCRL(ctx, "ca-op")
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "latest CRL", *crl, CRL{CAID: "ca-op", Number: 3, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), DER: []byte("three")})
		if _, err := s.SaveCRL(ctx, CRL{CAID: "ca-op", Number: 4}); err == nil {
			t.Error("SaveCRL without DER succeeded")
		}
	})
}
