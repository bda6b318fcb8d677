package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// These tests run the SDK against the real admin API on a TLS test server
// with a real SQLite store: they prove the client and the server agree on
// every route, not just on what a fake server was told to answer.

type realAPI struct {
	url   string
	roots *x509.CertPool
	st    *store.Store
	admin *Client
}

func startRealAPI(t *testing.T) *realAPI {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := pki.NewFileKeyStore(t.TempDir(), []byte("test passphrase"), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ca.Open(ctx, st, ks, ca.Options{})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	srv := httptest.NewTLSServer(api.New(api.Config{Store: st, CAs: cas}).Handler())
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	r := &realAPI{url: srv.URL, roots: roots, st: st}
	r.admin = r.clientWithRole(t, "admin", "")
	return r
}

// clientWithRole stores a new token with the role and returns a client
// that uses it.
func (r *realAPI) clientWithRole(t *testing.T, role, factory string) *Client {
	t.Helper()
	secret, hash := api.NewTokenSecret()
	tok := &store.Token{Name: "test-" + role, Role: role, Factory: factory, Hash: hash}
	if err := r.st.CreateToken(context.Background(), tok, "test"); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return r.clientWithSecret(t, secret)
}

func (r *realAPI) clientWithSecret(t *testing.T, secret string) *Client {
	t.Helper()
	c, err := New(r.url, WithToken(secret), WithRootCAs(r.roots), WithRetry(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "components":[{"type":"device","name":"mainboard","version":"r3"},
               {"type":"firmware","name":"bootloader","version":"2.1.0"}]}`

func TestRealAPIDeviceLifecycle(t *testing.T) {
	r := startRealAPI(t)
	c := r.admin
	ctx := context.Background()

	who, err := c.Whoami(ctx)
	if err != nil || who.Role != RoleAdmin {
		t.Fatalf("Whoami = %+v, %v", who, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	doc, err := c.OpenAPI(ctx)
	if err != nil || !strings.Contains(string(doc), `"openapi"`) {
		t.Fatalf("OpenAPI: %v (%d bytes)", err, len(doc))
	}

	in := DeviceInput{
		Identity: Identity{Serial: "SN-0001", Model: "sensor-x", Factory: "acme", Batch: "B1"},
		Manufacturing: Manufacturing{
			BOM: json.RawMessage(testBOM),
			QC:  []QCResult{{Test: "rf-power", Result: "pass", Measurements: map[string]float64{"dBm": 14.2}}},
		},
		Attributes: map[string]string{"color": "grey", "legacy": "yes"},
	}
	d, err := c.CreateDevice(ctx, in)
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if d.ID == "" || d.Lifecycle.State != StateManufactured || d.Version < 1 {
		t.Fatalf("created %+v", d)
	}
	if _, err := c.CreateDevice(ctx, in); !HasCode(err, CodeDuplicate) {
		t.Fatalf("duplicate serial: err = %v, want duplicate", err)
	}
	var apiErr *APIError
	if _, err := c.CreateDevice(ctx, DeviceInput{Identity: Identity{Model: "m", Factory: "acme"}}); !errors.As(err, &apiErr) ||
		apiErr.Code != CodeValidationFailed || apiErr.Field != "identity.serial" {
		t.Fatalf("missing serial: err = %v, want validation_failed on identity.serial", err)
	}

	got, err := c.GetDevice(ctx, d.ID)
	if err != nil || got.Identity.Serial != "SN-0001" {
		t.Fatalf("GetDevice = %+v, %v", got, err)
	}
	if _, err := c.GetDevice(ctx, "dev_nope"); !HasCode(err, CodeNotFound) {
		t.Fatalf("GetDevice unknown: %v", err)
	}

	// An invalid move names the allowed ones.
	_, err = c.SetState(ctx, d.ID, StateActive, "")
	if !errors.As(err, &apiErr) || apiErr.Code != CodeInvalidTransition ||
		!slices.Equal(apiErr.Allowed, []string{"pending", "provisioned", "decommissioned"}) {
		t.Fatalf("invalid transition: %v (allowed %v)", err, apiErr.Allowed)
	}
	for _, s := range []State{StatePending, StateProvisioned, StateActive} {
		if d, err = c.SetState(ctx, d.ID, s, "test"); err != nil || d.Lifecycle.State != s {
			t.Fatalf("SetState(%s) = %v", s, err)
		}
	}

	// A stale version is refused; the current one goes through.
	owner := "city-of-lyon"
	patch := DevicePatch{Inventory: &Inventory{Owner: owner, Groups: []string{"streetlights"}}, Attributes: map[string]*string{"legacy": nil}}
	if _, err := c.UpdateDevice(ctx, d.ID, patch, d.Version-1); !HasCode(err, CodeVersionMismatch) {
		t.Fatalf("stale If-Match: err = %v, want version_mismatch", err)
	}
	if d, err = c.UpdateDevice(ctx, d.ID, patch, d.Version); err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	if d.Inventory.Owner != owner || d.Attributes["color"] != "grey" {
		t.Fatalf("after update: %+v, attributes %v", d.Inventory, d.Attributes)
	}
	if _, ok := d.Attributes["legacy"]; ok {
		t.Fatalf("attribute legacy not deleted: %v", d.Attributes)
	}

	if d, err = c.AddQC(ctx, d.ID, QCResult{Test: "burn-in", Result: "pass"}); err != nil || len(d.Manufacturing.QC) != 2 {
		t.Fatalf("AddQC: %v", err)
	}
	if d, err = c.AddTest(ctx, d.ID, TestResult{Test: "mqtt-connect", Result: "pass"}); err != nil || len(d.Provisioning.Tests) != 1 {
		t.Fatalf("AddTest: %v", err)
	}
	if d, err = c.AddMaintenance(ctx, d.ID, MaintenanceItem{Problem: "no telemetry", Technician: "tech-7"}); err != nil || len(d.Maintenance) != 1 {
		t.Fatalf("AddMaintenance: %v", err)
	}
	if _, err := c.Dispose(ctx, d.ID, Disposal{Method: "recycle"}); !HasCode(err, CodeInvalidTransition) {
		t.Fatalf("dispose before decommission: %v", err)
	}
	d, err = c.Decommission(ctx, d.ID, DecommissionRequest{Reason: "end of contract",
		Wipe: WipeAttestation{Method: "crypto-erase", By: "tech-7", Evidence: "wipe-log-0042"}})
	if err != nil || d.Lifecycle.State != StateDecommissioned || d.EndOfLife.Wipe == nil {
		t.Fatalf("Decommission = %v", err)
	}
	if d, err = c.Dispose(ctx, d.ID, Disposal{Method: "recycle", Facility: "WEEE-Lyon-1"}); err != nil || d.Lifecycle.State != StateDisposed {
		t.Fatalf("Dispose = %v", err)
	}

	comps, err := c.Components(ctx, d.ID)
	if err != nil || len(comps) != 2 || comps[0].Name != "mainboard" {
		t.Fatalf("Components = %+v, %v", comps, err)
	}
	events, err := c.History(ctx, d.ID)
	if err != nil || len(events) < 10 || events[0].Type != "device.created" {
		t.Fatalf("History: %d events, %v", len(events), err)
	}
	v, err := c.VerifyHistory(ctx, d.ID)
	if err != nil || !v.OK || v.Events != int64(len(events)) {
		t.Fatalf("VerifyHistory = %+v, %v", v, err)
	}
	p, err := c.Passport(ctx, d.ID)
	if err != nil || p.DeviceID != d.ID || !p.History.Verified || p.EndOfLife.Wipe.Method != "crypto-erase" {
		t.Fatalf("Passport = %v", err)
	}
	md, err := c.PassportMarkdown(ctx, d.ID)
	if err != nil || !strings.HasPrefix(string(md), "# Device passport") || !strings.Contains(string(md), "crypto-erase") {
		t.Fatalf("PassportMarkdown: %v\n%s", err, md)
	}
}

func TestRealAPIPagination(t *testing.T) {
	r := startRealAPI(t)
	ctx := context.Background()
	for i := range 7 {
		in := DeviceInput{Identity: Identity{Serial: "P-" + string(rune('a'+i)), Model: "m", Factory: "acme"}}
		if i%2 == 0 {
			in.Attributes = map[string]string{"even": "yes"}
		}
		if _, err := r.admin.CreateDevice(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	page, err := r.admin.ListDevices(ctx, DeviceFilter{Model: "m"}, ListOptions{Limit: 3})
	if err != nil || len(page.Items) != 3 || page.NextCursor == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	// Follow real cursors with small pages through the same iterator
	// Devices uses.
	var serials, ids []string
	for d, err := range iteratePages(ctx, func(ctx context.Context, cursor string) (*Page[Device], error) {
		return r.admin.ListDevices(ctx, DeviceFilter{Model: "m"}, ListOptions{Limit: 3, Cursor: cursor})
	}) {
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, d.Identity.Serial)
		ids = append(ids, d.ID)
	}
	// Listing is in id order; ids made in the same millisecond need not
	// follow creation order, so compare the set and check the order.
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 7 {
		t.Fatalf("ids not in order or repeated: %v", ids)
	}
	slices.Sort(serials)
	if strings.Join(serials, ",") != "P-a,P-b,P-c,P-d,P-e,P-f,P-g" {
		t.Fatalf("iterated %v", serials)
	}
	n := 0
	for d, err := range r.admin.Devices(ctx, DeviceFilter{Attributes: map[string]string{"even": "yes"}}) {
		if err != nil {
			t.Fatal(err)
		}
		if d.Attributes["even"] != "yes" {
			t.Fatalf("filter let through %+v", d)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("Devices with attr filter: %d, want 4", n)
	}
	if _, err := r.admin.ListDevices(ctx, DeviceFilter{}, ListOptions{Cursor: "forged"}); !HasCode(err, CodeBadCursor) {
		t.Fatalf("forged cursor: %v", err)
	}
}

func TestRealAPICountDevices(t *testing.T) {
	r := startRealAPI(t)
	ctx := context.Background()
	for i := range 5 {
		in := DeviceInput{Identity: Identity{Serial: "C-" + string(rune('a'+i)), Model: "m" + strconv.Itoa(i%2), Factory: "acme"}}
		if i < 2 {
			in.Attributes = map[string]string{"fw": "2"}
		}
		if _, err := r.admin.CreateDevice(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		f    DeviceFilter
		want int64
	}{
		{DeviceFilter{}, 5},
		{DeviceFilter{Model: "m0"}, 3},
		{DeviceFilter{Model: "m1", Attributes: map[string]string{"fw": "2"}}, 1},
		{DeviceFilter{SerialPrefix: "C-"}, 5},
		{DeviceFilter{Factory: "elsewhere"}, 0},
	} {
		n, err := r.admin.CountDevices(ctx, c.f)
		if err != nil || n != c.want {
			t.Errorf("CountDevices(%+v) = %d, %v; want %d", c.f, n, err, c.want)
		}
	}
	if _, err := r.admin.CountDevices(ctx, DeviceFilter{State: "actve"}); !HasCode(err, CodeBadQuery) {
		t.Fatalf("CountDevices(unknown state) = %v, want %s", err, CodeBadQuery)
	}
}

func TestRealAPITokensAndAudit(t *testing.T) {
	r := startRealAPI(t)
	ctx := context.Background()
	if _, err := r.admin.CreateFactory(ctx, FactoryRequest{Name: "acme", Models: []string{"m"}, SerialPattern: "M-[0-9]+"}); err != nil {
		t.Fatalf("CreateFactory: %v", err)
	}
	created, err := r.admin.CreateToken(ctx, TokenRequest{Name: "acme-line-1", Role: RoleManufacturer, Factory: "acme", ExpiresIn: 720 * time.Hour})
	if err != nil || !strings.HasPrefix(created.Secret, "mst_") || created.Token.ExpiresAt == nil {
		t.Fatalf("CreateToken = %+v, %v", created, err)
	}
	mfg := r.clientWithSecret(t, created.Secret)
	who, err := mfg.Whoami(ctx)
	if err != nil || who.Role != RoleManufacturer || who.Factory != "acme" {
		t.Fatalf("manufacturer Whoami = %+v, %v", who, err)
	}
	// Its own factory is the default; another factory's device is invisible.
	own, err := mfg.CreateDevice(ctx, DeviceInput{Identity: Identity{Serial: "M-1", Model: "m"}})
	if err != nil || own.Identity.Factory != "acme" {
		t.Fatalf("manufacturer CreateDevice = %+v, %v", own, err)
	}
	other, err := r.admin.CreateDevice(ctx, DeviceInput{Identity: Identity{Serial: "O-1", Model: "m", Factory: "globex"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mfg.GetDevice(ctx, other.ID); !HasCode(err, CodeNotFound) {
		t.Fatalf("other factory's device: %v, want not_found", err)
	}
	if _, err := mfg.ListTokens(ctx); !HasCode(err, CodeForbidden) {
		t.Fatalf("manufacturer ListTokens: %v, want forbidden", err)
	}

	tokens, err := r.admin.ListTokens(ctx)
	if err != nil || !slices.ContainsFunc(tokens, func(t Token) bool { return t.ID == created.Token.ID }) {
		t.Fatalf("ListTokens = %+v, %v", tokens, err)
	}
	if err := r.admin.RevokeToken(ctx, created.Token.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if _, err := mfg.Whoami(ctx); !HasCode(err, CodeUnauthorized) {
		t.Fatalf("revoked token: %v, want unauthorized", err)
	}

	events, err := r.admin.AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if !slices.Contains(types, "token.created") || !slices.Contains(types, "token.revoked") {
		t.Fatalf("audit log types %v", types)
	}
	v, err := r.admin.VerifyAuditLog(ctx)
	if err != nil || !v.OK || v.Events != int64(len(events)) {
		t.Fatalf("VerifyAuditLog = %+v, %v", v, err)
	}
}
