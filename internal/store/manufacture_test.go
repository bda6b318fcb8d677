package store

import (
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// unit is a manufactured unit with a birth certificate for the key fp.
func unit(serial, fp string) ManufactureItem {
	now := time.Now().UTC().Truncate(time.Second)
	return ManufactureItem{
		Device: newTestDevice(serial),
		Cert: &Certificate{CAID: "ca_m", Serial: SerialHex(new(big.Int).SetBytes([]byte(serial))), Kind: CertBirth,
			Fingerprint: fp, NotBefore: now, NotAfter: now.Add(time.Hour), CertPEM: "PEM " + serial},
	}
}

func units(from, n int) []ManufactureItem {
	items := make([]ManufactureItem, n)
	for i := range items {
		items[i] = unit(fmt.Sprintf("SN-%05d", from+i), fmt.Sprintf("fp-%05d", from+i))
	}
	return items
}

func TestManufactureDevices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		// More than copyThreshold, so PostgreSQL takes the COPY path.
		items := units(0, 200)
		inserted, err := s.ManufactureDevices(ctx, items, "manufacturer/line-1")
		if err != nil {
			t.Fatalf("ManufactureDevices: %v", err)
		}
		for i, ok := range inserted {
			if !ok {
				t.Fatalf("item %d not inserted", i)
			}
		}
		mustEqual(t, "devices", countAll(t, s, "devices"), 200)
		mustEqual(t, "certificates", countAll(t, s, "certificates"), 200)
		mustEqual(t, "key owners", countAll(t, s, "key_owners"), 200)
		first := items[7].Device
		evs := mustVerify(t, s, first.ID, 1)
		mustEqual(t, "event", []string{evs[0].Type, evs[0].Actor}, []string{fleet.EventCreated, "manufacturer/line-1"})

		certs, err := s.CertificatesByDevice(ctx, first.ID)
		if err != nil || len(certs) != 1 || certs[0].DeviceID != first.ID || certs[0].Kind != CertBirth || certs[0].CertPEM != "PEM SN-00007" || certs[0].RevokedAt != nil {
			t.Fatalf("CertificatesByDevice = %+v, %v", certs, err)
		}
		byFP, err := s.CertificateByFingerprint(ctx, "fp-00007")
		if err != nil || byFP.DeviceID != first.ID || byFP.Serial != certs[0].Serial {
			t.Fatalf("CertificateByFingerprint = %+v, %v", byFP, err)
		}
		if _, err := s.CertificateByFingerprint(ctx, "fp-none"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CertificateByFingerprint(unknown) = %v, want ErrNotFound", err)
		}
		owners, err := s.KeyOwners(ctx, []string{"fp-00001", "fp-none", "fp-00199"})
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "owners", owners, map[string]string{"fp-00001": items[1].Device.ID, "fp-00199": items[199].Device.ID})

		// Resubmitting registers nothing and certifies nothing again; the
		// stored records come back.
		again := append(units(0, 3), unit("SN-09000", "fp-09000"))
		inserted, err = s.ManufactureDevices(ctx, again, "manufacturer/line-1")
		if err != nil {
			t.Fatalf("ManufactureDevices again: %v", err)
		}
		mustEqual(t, "inserted", inserted, []bool{false, false, false, true})
		mustEqual(t, "stored id", again[1].Device.ID, items[1].Device.ID)
		mustEqual(t, "certificates", countAll(t, s, "certificates"), 201)

		existing, err := s.ExistingDevices(ctx, []*fleet.Device{newTestDevice("SN-00002"), newTestDevice("SN-77777")})
		if err != nil || existing[0] == nil || existing[0].ID != items[2].Device.ID || existing[1] != nil {
			t.Fatalf("ExistingDevices = %v, %v", existing, err)
		}
		births, err := s.BirthCertificates(ctx, []string{items[0].Device.ID, items[5].Device.ID, "dev_none"})
		if err != nil || len(births) != 2 || births[items[5].Device.ID].CertPEM != "PEM SN-00005" {
			t.Fatalf("BirthCertificates = %+v, %v", births, err)
		}
	})
}

func TestManufactureRefusesKeyReuse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if _, err := s.ManufactureDevices(ctx, units(0, 3), "line"); err != nil {
			t.Fatal(err)
		}
		for name, items := range map[string][]ManufactureItem{
			"key of a stored device":    {unit("SN-10000", "fp-10000"), unit("SN-10001", "fp-00001")},
			"one key for two new units": {unit("SN-10000", "fp-x"), unit("SN-10001", "fp-10001"), unit("SN-10002", "fp-x")},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := s.ManufactureDevices(ctx, items, "line")
				var kr *KeyReuseError
				if !errors.As(err, &kr) || !errors.Is(err, ErrKeyReused) {
					t.Fatalf("ManufactureDevices = %v, want a KeyReuseError", err)
				}
				if want := len(items) - 1; kr.Index != want {
					t.Errorf("KeyReuseError.Index = %d, want %d", kr.Index, want)
				}
				mustEqual(t, "devices", countAll(t, s, "devices"), 3)
				mustEqual(t, "certificates", countAll(t, s, "certificates"), 3)
			})
		}
		// One device may hold its key in a repeated item.
		inserted, err := s.ManufactureDevices(ctx, []ManufactureItem{unit("SN-20000", "fp-20000"), unit("SN-20000", "fp-20000")}, "line")
		if err != nil || !inserted[0] || inserted[1] {
			t.Fatalf("repeated item: %v, %v", inserted, err)
		}
	})
}

// TestManufactureConcurrentKeyClaims runs writers at once that certify one
// key for different devices: exactly one device gets it, on every backend.
func TestManufactureConcurrentKeyClaims(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		const writers = 4
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				items := units(w*100, 100)
				items[50].Cert.Fingerprint = "fp-shared"
				_, errs[w] = s.ManufactureDevices(t.Context(), items, "line")
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrKeyReused):
				t.Errorf("ManufactureDevices: %v", err)
			}
		}
		mustEqual(t, "writers that got the key", won, 1)
		mustEqual(t, "devices", countAll(t, s, "devices"), 100)
		owners, _ := s.KeyOwners(t.Context(), []string{"fp-shared"})
		mustEqual(t, "owners of the shared key", len(owners), 1)
	})
}
