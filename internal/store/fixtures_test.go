package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// testBOM keeps its whitespace and HTML-looking text: the store must give
// back exactly these bytes.
const testBOM = `{
  "bomFormat": "CycloneDX",
  "specVersion": "1.6",
  "version": 1,
  "metadata": {"component": {"type": "device", "name": "sensor <v2> & co"}},
  "components": [
    {"type": "device", "name": "mainboard", "version": "r3", "components": [
      {"type": "firmware", "name": "bootloader", "version": "2.1"}
    ]},
    {"type": "library", "name": "openssl", "group": "org.openssl", "version": "3.0.13", "purl": "pkg:generic/openssl@3.0.13"}
  ]
}`

const espBOM = `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"device","name":"esp32","version":"s3"}]}`

// newTestDevice is a valid device; opts adjust it.
func newTestDevice(serial string, opts ...func(*fleet.Device)) *fleet.Device {
	d := &fleet.Device{
		Identity: fleet.Identity{Serial: serial, Model: "m1", Factory: "f1", Batch: "b1"},
		Inventory: fleet.Inventory{
			Owner:  "acme",
			Groups: []string{"g1"},
			Tags:   []string{"t1"},
		},
		Attributes: map[string]string{"fw": "1.0"},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func withBOM(bom string) func(*fleet.Device) {
	return func(d *fleet.Device) { d.Manufacturing.BOM = json.RawMessage(bom) }
}

// mustCreate creates d or fails the test.
func mustCreate(t *testing.T, s *Store, d *fleet.Device) *fleet.Device {
	t.Helper()
	if err := s.CreateDevice(t.Context(), d, "tester"); err != nil {
		t.Fatalf("CreateDevice(%s): %v", d.Identity.Serial, err)
	}
	return d
}

// sameDevice fails unless a and b encode to the same JSON, the form every
// client sees; time zones and nil-versus-empty do not matter there.
func sameDevice(t *testing.T, got, want *fleet.Device) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("device differs:\n got  %s\n want %s", g, w)
	}
}

// countRows returns the number of rows of table whose device column is id.
func countRows(t *testing.T, s *Store, table, col, id string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), s.d.rebind("SELECT COUNT(*) FROM "+table+" WHERE "+col+" = ?"), id).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// countAll returns the number of rows of table.
func countAll(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func serials(ds []*fleet.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Identity.Serial
	}
	return out
}

func mustEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func mustVerify(t *testing.T, s *Store, subject string, wantEvents int) []fleet.Event {
	t.Helper()
	evs, err := s.History(t.Context(), subject)
	if err != nil {
		t.Fatalf("History(%s): %v", subject, err)
	}
	if len(evs) != wantEvents {
		t.Fatalf("History(%s) has %d events, want %d: %s", subject, len(evs), wantEvents, fmt.Sprint(evs))
	}
	if br := fleet.VerifyChain(evs); br != nil {
		t.Fatalf("chain of %s broken at %d: %s", subject, br.Seq, br.Reason)
	}
	return evs
}
