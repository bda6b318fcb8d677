package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestTemplateVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.PutTemplate(ctx, "t", []byte(`{"name":"t"}`), false, "op"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update of a missing template: %v", err)
		}
		v1, err := s.PutTemplate(ctx, "t", []byte(`{"name":"t","approval":"auto"}`), true, "op")
		if err != nil || v1.Version != 1 {
			t.Fatalf("create: %+v %v", v1, err)
		}
		if _, err := s.PutTemplate(ctx, "t", []byte(`{}`), true, "op"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second create: %v", err)
		}
		v2, err := s.PutTemplate(ctx, "t", []byte(`{"name":"t","approval":"manual"}`), false, "op")
		if err != nil || v2.Version != 2 {
			t.Fatalf("update: %+v %v", v2, err)
		}
		got, err := s.Template(ctx, "t")
		if err != nil || got.Version != 2 || string(got.Doc) != `{"name":"t","approval":"manual"}` {
			t.Fatalf("newest: %+v %v", got, err)
		}
		if err := s.DeleteTemplate(ctx, "t", "op"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Template(ctx, "t"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted template still found: %v", err)
		}
		// Recreated, its versions continue: (name, version) means one document.
		v3, err := s.PutTemplate(ctx, "t", []byte(`{"name":"t"}`), true, "op")
		if err != nil || v3.Version != 3 {
			t.Fatalf("recreate: %+v %v", v3, err)
		}
		if list, err := s.ListTemplates(ctx); err != nil || len(list) != 1 || list[0].Version != 3 {
			t.Fatalf("list: %+v %v", list, err)
		}
	})
}

func TestProvisioningRequestsAndApprovals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		d := mustCreate(t, s, newTestDevice("SN-P1"))
		q := ProvisioningRequest{ID: "prq_1", Requester: "birth:k", CSRSHA256: "c1", DeviceID: d.ID, Kind: RequestProvision,
			Template: "default", TemplateVersion: 1, Status: RequestPending}
		pend := func(d *fleet.Device) (*Change, error) {
			if _, err := d.Move(fleet.StatePending, "device", "", time.Now()); err != nil {
				return nil, err
			}
			return &Change{Type: EventProvisioningPending}, nil
		}
		if _, err := s.CommitProvisioning(ctx, &ProvisioningCommit{Request: q, Update: pend, Actor: "device"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitProvisioning(ctx, &ProvisioningCommit{Request: q, Actor: "device"}); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("the same request twice: %v", err)
		}
		same, inFlight, err := s.ProvisioningRequests(ctx, "birth:k", "c2")
		if err != nil || same != nil || len(inFlight) != 1 {
			t.Fatalf("another CSR sees %+v %+v %v", same, inFlight, err)
		}
		if _, err := s.DecideApproval(ctx, "prq_1", false, "no", "op"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DecideApproval(ctx, "prq_1", true, "", "op"); !errors.Is(err, ErrVersionMismatch) {
			t.Fatalf("deciding twice: %v", err)
		}
		got, _ := s.GetDevice(ctx, d.ID)
		if got.Lifecycle.State != fleet.StateRejected {
			t.Errorf("rejected device is %s", got.Lifecycle.State)
		}
		mustVerify(t, s, d.ID, 3)
	})
}

func TestClaims(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now()
		c := &Claim{Hash: "h", Factory: "f", Model: "m", Serial: "s", ExpiresAt: now.Add(time.Minute)}
		if err := s.CreateClaim(ctx, c, "installer"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RedeemClaim(ctx, "h", "csr1", now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RedeemClaim(ctx, "h", "csr1", now); err != nil {
			t.Errorf("a retry of the same request: %v", err)
		}
		for _, tc := range []struct {
			hash, csr string
			at        time.Time
		}{{"h", "csr2", now}, {"h", "csr1", now.Add(2 * time.Minute)}, {"unknown", "csr1", now}} {
			if _, err := s.RedeemClaim(ctx, tc.hash, tc.csr, tc.at); !errors.Is(err, ErrNotFound) {
				t.Errorf("redeem %+v: %v", tc, err)
			}
		}
	})
}
