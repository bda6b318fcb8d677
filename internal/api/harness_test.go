package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"github.com/muster-iot/muster/internal/store/pgtest"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// Callers of the test API. Each role has a token; manufacturer is scoped to
// factory f1, manufacturer2 to f2. revoked and expired hold admin tokens that
// no longer work.
const (
	callerNone    = ""
	factory1      = "factory-one"
	factory2      = "factory-two"
	manufacturer2 = "manufacturer2"
	revoked       = "revoked"
	expired       = "expired"
)

// testBOM is a valid CycloneDX 1.6 BOM with three components.
const testBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "components":[{"type":"device","name":"mainboard","version":"r3",
   "components":[{"type":"firmware","name":"bootloader","version":"2.1"}]},
  {"type":"device","name":"lte-modem","group":"acme"}]}`

type harness struct {
	t      *testing.T
	st     *store.Store
	cas    *ca.Registry
	srv    *Server
	sent   *commandLog       // what the server's commander was asked to send
	tokens map[string]string // caller → secret
	serial *atomic.Int64
}

// with returns the harness reporting to t, for use inside subtests: a
// failure must stop the goroutine of the test that is running.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: testStoreURL(t), DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	cas := testCAs(t, st)
	sent := &commandLog{}
	h := &harness{t: t, st: st, cas: cas, srv: New(Config{Store: st, CAs: cas, Commander: sent}), sent: sent, tokens: map[string]string{}, serial: new(atomic.Int64)}
	// Manufacturers are scoped by their factory's models and serials.
	for _, f := range []string{factory1, factory2} {
		h.registerFactory(f)
	}
	past := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		caller, role, factory string
		expires               *time.Time
	}{
		{string(RoleAdmin), "admin", "", nil},
		{string(RoleOperator), "operator", "", nil},
		{string(RoleManufacturer), "manufacturer", factory1, nil},
		{manufacturer2, "manufacturer", factory2, nil},
		{string(RoleInstaller), "installer", "", nil},
		{string(RoleAuditor), "auditor", "", nil},
		{revoked, "admin", "", nil},
		{expired, "admin", "", &past},
	} {
		secret, hash := NewTokenSecret()
		tok := &store.Token{Name: c.caller + "-token", Role: c.role, Factory: c.factory, Hash: hash, ExpiresAt: c.expires}
		if err := st.CreateToken(ctx, tok, "test/setup"); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		if c.caller == revoked {
			if err := st.RevokeToken(ctx, tok.ID, "test/setup"); err != nil {
				t.Fatalf("RevokeToken: %v", err)
			}
		}
		h.tokens[c.caller] = secret
	}
	return h
}

// testCAs opens a CA registry on st with fast-to-derive key files.
func testCAs(t *testing.T, st *store.Store) *ca.Registry {
	t.Helper()
	ks, err := pki.NewFileKeyStore(t.TempDir(), []byte("test passphrase"), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ca.Open(context.Background(), st, ks, ca.Options{})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	return cas
}

// testModel and testSerials are what the harness's factories make; input
// stays inside them.
const (
	testModel   = "gw-100"
	testSerials = "SN-[A-Z0-9-]+"
)

// registerFactory registers a managed factory making testModel.
func (h *harness) registerFactory(name string) {
	h.t.Helper()
	f := store.Factory{Name: name, Models: []string{testModel}, SerialPattern: testSerials, CAMode: "managed"}
	if _, err := h.cas.AddFactory(context.Background(), ca.FactoryRequest{Factory: f}, "test/setup"); err != nil {
		h.t.Fatalf("AddFactory(%s): %v", name, err)
	}
}

// testStoreURL is "" (SQLite in the test's DataDir) or, with
// MUSTER_TEST_DATABASE_URL set, a fresh PostgreSQL schema per test.
func testStoreURL(t *testing.T) string {
	return pgtest.URL(t)
}

// request is one test request. body is sent as is when it is a string or
// []byte, JSON-encoded otherwise, and with Content-Type application/json
// unless header says otherwise.
type request struct {
	caller string
	method string
	path   string
	body   any
	header map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

func (h *harness) do(rq request) *httptest.ResponseRecorder {
	h.t.Helper()
	var body io.Reader
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if rq.chunked {
		r.ContentLength = -1
	}
	if rq.caller != callerNone {
		r.Header.Set("Authorization", "Bearer "+h.tokens[rq.caller])
	}
	for k, v := range rq.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, r)
	return w
}

// call sends rq, insists on status want and decodes the answer into T.
func call[T any](h *harness, rq request, want int) T {
	h.t.Helper()
	w := h.do(rq)
	if w.Code != want {
		h.t.Fatalf("%s %s as %q: status %d, want %d: %s", rq.method, rq.path, rq.caller, w.Code, want, w.Body)
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		h.t.Fatalf("%s %s: decoding %T: %v: %s", rq.method, rq.path, v, err, w.Body)
	}
	return v
}

// errorOf decodes an error answer.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error answer is not JSON: %v: %s", err, w.Body)
	}
	return e
}

// input is a device body for POST /v1/devices with a fresh serial.
func (h *harness) input(factory string) map[string]any {
	n := h.serial.Add(1)
	identity := map[string]any{"serial": fmt.Sprintf("SN-%05d", n), "model": testModel}
	if factory != "" {
		identity["factory"] = factory
	}
	return map[string]any{"identity": identity}
}

// newDevice registers a device as admin in factory, in state manufactured.
func (h *harness) newDevice(factory string) *fleet.Device {
	h.t.Helper()
	return call[*fleet.Device](h, request{caller: "admin", method: "POST", path: "/v1/devices", body: h.input(factory)}, http.StatusCreated)
}

// deviceIn registers a device and walks it as admin to state.
func (h *harness) deviceIn(factory string, state fleet.State) *fleet.Device {
	h.t.Helper()
	d := h.newDevice(factory)
	path := map[fleet.State][]fleet.State{
		fleet.StateManufactured:   nil,
		fleet.StatePending:        {fleet.StatePending},
		fleet.StateProvisioned:    {fleet.StatePending, fleet.StateProvisioned},
		fleet.StateActive:         {fleet.StatePending, fleet.StateProvisioned, fleet.StateActive},
		fleet.StateDecommissioned: {fleet.StateDecommissioned},
	}[state]
	for _, st := range path {
		if st == fleet.StateDecommissioned {
			d = call[*fleet.Device](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/decommission",
				body: decommissionBody()}, http.StatusOK)
			continue
		}
		d = call[*fleet.Device](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/state",
			body: map[string]any{"state": st}}, http.StatusOK)
	}
	if d.Lifecycle.State != state {
		h.t.Fatalf("device %s is %s, want %s", d.ID, d.Lifecycle.State, state)
	}
	return d
}

func decommissionBody() map[string]any {
	return map[string]any{"reason": "end of contract",
		"wipe": map[string]any{"method": "crypto-erase", "by": "tech-7", "evidence": "ticket 42"}}
}

// snapshot is everything a request could have written.
type snapshot struct {
	devices, events, tokens int
	revokedTokens           int
	revokedCertificates     int
	device                  string // the watched device's stored JSON
}

func (h *harness) snapshot(deviceID string) snapshot {
	h.t.Helper()
	var s snapshot
	db := h.st.DB()
	for _, c := range []struct {
		q   string
		dst *int
	}{
		{"SELECT COUNT(*) FROM devices", &s.devices},
		{"SELECT COUNT(*) FROM events", &s.events},
		{"SELECT COUNT(*) FROM tokens", &s.tokens},
		{"SELECT COUNT(*) FROM tokens WHERE revoked_at IS NOT NULL", &s.revokedTokens},
		{"SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL", &s.revokedCertificates},
	} {
		if err := db.QueryRow(c.q).Scan(c.dst); err != nil {
			h.t.Fatalf("%s: %v", c.q, err)
		}
	}
	if deviceID != "" {
		d, err := h.st.GetDevice(context.Background(), deviceID)
		if err != nil {
			h.t.Fatalf("GetDevice: %v", err)
		}
		raw, _ := json.Marshal(d)
		s.device = string(raw)
	}
	return s
}

// assertUnchanged fails when anything was written since before.
func (h *harness) assertUnchanged(t *testing.T, before snapshot, deviceID string) {
	t.Helper()
	if after := h.snapshot(deviceID); !reflect.DeepEqual(before, after) {
		t.Errorf("a failed request wrote something:\nbefore %+v\nafter  %+v", before, after)
	}
}

// exec runs a statement on the store's database, with PostgreSQL
// placeholders when the store is PostgreSQL.
func (h *harness) exec(query string, args ...any) sql.Result {
	h.t.Helper()
	if h.st.Backend() == "postgres" {
		for i := range args {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i+1), 1)
		}
	}
	res, err := h.st.DB().Exec(query, args...)
	if err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return res
}
