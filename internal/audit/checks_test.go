package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// fixture is a store with a settable clock and helpers to shape a fleet.
type fixture struct {
	t      testing.TB
	st     *store.Store
	now    *atomic.Pointer[time.Time]
	serial int
}

var epoch = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	return newFixtureAt(t, "sqlite://"+filepath.Join(t.TempDir(), "muster.db"))
}

func newFixtureAt(t *testing.T, url string) *fixture {
	t.Helper()
	now := &atomic.Pointer[time.Time]{}
	start := epoch
	now.Store(&start)
	st, err := store.Open(t.Context(), store.Config{URL: url, Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, st: st, now: now}
}

// forEachBackend runs fn on SQLite and, when configured, PostgreSQL.
func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newFixture(t)) })
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		if u == "" {
			t.Skip("MUSTER_TEST_DATABASE_URL not set: PostgreSQL conformance tests skipped")
		}
		fn(t, newFixtureAt(t, u))
	})
}

func (f *fixture) setNow(t time.Time) { f.now.Store(&t) }

// device registers a device in state with an operational certificate
// issued now (nil cert for none) and returns its id.
func (f *fixture) device(state fleet.State, cert *store.Certificate, opts ...func(*fleet.Device)) string {
	f.t.Helper()
	f.serial++
	d := &fleet.Device{Identity: fleet.Identity{Serial: fmt.Sprintf("S%04d", f.serial), Model: "m1", Factory: "f1"},
		Lifecycle: fleet.Lifecycle{State: state, StateChangedAt: *f.now.Load()}}
	for _, o := range opts {
		o(d)
	}
	if _, err := f.st.ManufactureDevices(f.t.Context(), []store.ManufactureItem{{Device: d, Cert: cert}}, "test"); err != nil {
		f.t.Fatalf("ManufactureDevices: %v", err)
	}
	return d.ID
}

// cert is an operational certificate valid from notBefore for validity,
// with a fresh P-256 key (so every certificate has its own fingerprint).
func (f *fixture) cert(notBefore time.Time, validity time.Duration) *store.Certificate {
	f.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return f.certWithKey(key, notBefore, validity)
}

func (f *fixture) certWithKey(key crypto.Signer, notBefore time.Time, validity time.Duration) *store.Certificate {
	f.t.Helper()
	f.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(f.serial)), Subject: pkix.Name{CommonName: "test"},
		NotBefore: notBefore, NotAfter: notBefore.Add(validity)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	sum := sha256.Sum256(spki)
	return &store.Certificate{CAID: "ca_op", Serial: fmt.Sprintf("%x", f.serial), Kind: store.CertOperational,
		Fingerprint: hex.EncodeToString(sum[:]), NotBefore: notBefore, NotAfter: notBefore.Add(validity),
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// run runs one check and returns the open findings of it by subject.
func (f *fixture) run(check string, p Params) map[string]store.Finding {
	f.t.Helper()
	r, err := New(Config{Store: f.st, Params: p, Node: "n1", Now: func() time.Time { return *f.now.Load() }})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := r.Run(f.t.Context(), Request{Checks: []string{check}, Actor: "test"}); err != nil {
		f.t.Fatalf("run %s: %v", check, err)
	}
	page, _, err := f.st.ListFindings(f.t.Context(), store.FindingFilter{Check: check, State: store.FindingOpen}, "", 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]store.Finding{}
	for _, x := range page {
		out[x.Subject] = x
	}
	return out
}

// expect fails unless exactly the subjects want have findings.
func expect(t *testing.T, got map[string]store.Finding, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d (%v): %v", len(got), len(want), want, keys(got))
	}
	for _, w := range want {
		f, ok := got[w]
		if !ok {
			t.Errorf("no finding for %s; have %v", w, keys(got))
			continue
		}
		if f.Message == "" || f.Fix == "" || f.Severity == "" {
			t.Errorf("finding %s lacks message, fix or severity: %+v", w, f)
		}
	}
}

func keys(m map[string]store.Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCheckCertShared(t *testing.T) {
	f := newFixture(t)
	a := f.device(fleet.StateActive, f.cert(epoch, 24*time.Hour))
	b := f.device(fleet.StateActive, f.cert(epoch, 24*time.Hour))
	c := f.device(fleet.StateActive, f.cert(epoch, 24*time.Hour))
	expect(t, f.run("cert-shared", Params{}))
	// Copy a's key onto b's certificate behind the store's back.
	if _, err := f.st.DB().ExecContext(t.Context(), `UPDATE certificates SET fingerprint = (SELECT fingerprint FROM certificates WHERE device_id = ?) WHERE device_id = ?`, a, b); err != nil {
		t.Fatal(err)
	}
	got := f.run("cert-shared", Params{})
	expect(t, got, a, b)
	if _, bad := got[c]; bad || !strings.Contains(got[a].Message, b) {
		t.Errorf("finding of a = %+v", got[a])
	}
}

func TestCheckCertCloned(t *testing.T) {
	f := newFixture(t)
	cloned := f.device(fleet.StateActive, nil)
	roaming := f.device(fleet.StateActive, nil)
	twoNodes := f.device(fleet.StateActive, nil)
	w := epoch.Truncate(5 * time.Minute).Add(-10 * time.Minute)
	save := func(node string, ws ...store.MeterWindow) {
		if err := f.st.SaveMeterWindows(t.Context(), node, ws); err != nil {
			t.Fatal(err)
		}
	}
	save("n1",
		store.MeterWindow{DeviceID: cloned, Start: w, Seconds: 300, Connects: 4, Takeovers: 3, SourceIPs: []string{"10.0.0.1", "198.51.100.7"}},
		// A device that changed address between windows is not a clone.
		store.MeterWindow{DeviceID: roaming, Start: w, Seconds: 300, Connects: 1, SourceIPs: []string{"10.0.0.2"}},
		store.MeterWindow{DeviceID: roaming, Start: w.Add(5 * time.Minute), Seconds: 300, Connects: 1, SourceIPs: []string{"10.0.0.3"}},
		store.MeterWindow{DeviceID: twoNodes, Start: w, Seconds: 300, Connects: 1, SourceIPs: []string{"10.0.0.4"}})
	save("n2", store.MeterWindow{DeviceID: twoNodes, Start: w, Seconds: 300, Connects: 1, SourceIPs: []string{"203.0.113.9"}})
	got := f.run("cert-cloned", Params{})
	expect(t, got, cloned, twoNodes)
	if !strings.Contains(got[cloned].Message, "198.51.100.7") {
		t.Errorf("message does not name the addresses: %s", got[cloned].Message)
	}
	// Outside the lookback nothing counts.
	f.setNow(epoch.Add(48 * time.Hour))
	expect(t, f.run("cert-cloned", Params{}))
}

func TestCheckCAExpiring(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		purpose  string
		notAfter time.Time
	}{{"operational", epoch.Add(30 * 24 * time.Hour)}, {"server", epoch.Add(400 * 24 * time.Hour)}, {"root", epoch.Add(-time.Hour)}} {
		if err := f.st.InsertCA(t.Context(), &store.CA{ID: "ca_" + c.purpose, Purpose: c.purpose, CertPEM: "x", SubjectKeyID: "k" + c.purpose, NotAfter: c.notAfter}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	got := f.run("ca-expiring", Params{})
	expect(t, got, "ca_operational", "ca_root")
	if !strings.Contains(got["ca_root"].Message, "expired") {
		t.Errorf("expired CA message: %s", got["ca_root"].Message)
	}
	// A shorter warning period leaves only the expired one.
	expect(t, f.run("ca-expiring", Params{CAExpiryWarning: 7 * 24 * time.Hour}), "ca_root")
}

func TestCheckCertExpiringAndTooOld(t *testing.T) {
	f := newFixture(t)
	soon := f.device(fleet.StateActive, f.cert(epoch.Add(-350*24*time.Hour), 360*24*time.Hour))
	fresh := f.device(fleet.StateActive, f.cert(epoch.Add(-24*time.Hour), 365*24*time.Hour))
	old := f.device(fleet.StateActive, f.cert(epoch.Add(-400*24*time.Hour), 800*24*time.Hour))
	// A suspended device's certificate matters to neither check.
	f.device(fleet.StateSuspended, f.cert(epoch.Add(-400*24*time.Hour), 401*24*time.Hour))
	expect(t, f.run("cert-expiring", Params{}), soon)
	expect(t, f.run("cert-too-old", Params{}), old)
	_ = fresh
	// A renewed certificate replaces the expiring one: the finding resolves.
	renewed := f.cert(epoch, 365*24*time.Hour)
	if _, err := f.st.CommitProvisioning(t.Context(), &store.ProvisioningCommit{
		Request:     store.ProvisioningRequest{Requester: "device:" + soon, CSRSHA256: "c1", DeviceID: soon, Kind: "renew", Status: "issued"},
		Certificate: renewed, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.run("cert-expiring", Params{}))
	if fs, _, _ := f.st.ListFindings(t.Context(), store.FindingFilter{Check: "cert-expiring", State: store.FindingResolved}, "", 10); len(fs) != 1 {
		t.Errorf("resolved findings = %v", fs)
	}
}

func TestCheckWeakKey(t *testing.T) {
	f := newFixture(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := f.device(fleet.StateActive, f.certWithKey(rsaKey, epoch.Add(-time.Hour), 24*time.Hour))
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	weakEC := f.device(fleet.StateActive, f.certWithKey(p224, epoch.Add(-time.Hour), 24*time.Hour))
	f.device(fleet.StateActive, f.cert(epoch.Add(-time.Hour), 24*time.Hour))
	// A weak certificate that expired is no longer a risk.
	rsa2, _ := rsa.GenerateKey(rand.Reader, 1024)
	f.device(fleet.StateActive, f.certWithKey(rsa2, epoch.Add(-48*time.Hour), 24*time.Hour))
	got := f.run("weak-key", Params{})
	if len(got) != 2 {
		t.Fatalf("findings = %v", keys(got))
	}
	for _, x := range got {
		if x.DeviceID != weak && x.DeviceID != weakEC || x.SubjectKind != SubjectCertificate {
			t.Errorf("finding %+v", x)
		}
		if x.DeviceID == weak && !strings.Contains(x.Message, "RSA 1024") {
			t.Errorf("message: %s", x.Message)
		}
	}
}

func TestCheckRevokedConnecting(t *testing.T) {
	f := newFixture(t)
	bad := f.device(fleet.StateActive, nil)
	good := f.device(fleet.StateActive, nil)
	w := epoch.Truncate(5 * time.Minute)
	if err := f.st.SaveMeterWindows(t.Context(), "n1", []store.MeterWindow{
		{DeviceID: bad, Start: w, Seconds: 300, Attempts: 5, AuthFailures: 5, RevokedAttempts: 5},
		// Refused for another reason (an expired certificate) is not this check.
		{DeviceID: good, Start: w, Seconds: 300, Attempts: 2, AuthFailures: 2},
	}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.run("revoked-connecting", Params{}), bad)
}

func TestCheckBirthAfterProvisioning(t *testing.T) {
	f := newFixture(t)
	replayed := f.device(fleet.StateActive, f.cert(epoch, 24*time.Hour))
	clean := f.device(fleet.StateActive, f.cert(epoch, 24*time.Hour))
	birth := func(dev, csr, status string) {
		if _, err := f.st.CommitProvisioning(t.Context(), &store.ProvisioningCommit{
			Request: store.ProvisioningRequest{Requester: "birth:fp-" + dev, CSRSHA256: csr, DeviceID: dev, Kind: "provision", Status: status}, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	// Requests before the certificate are the provisioning itself.
	f.setNow(epoch.Add(-time.Hour))
	birth(clean, "c0", "rejected")
	f.setNow(epoch.Add(time.Hour))
	birth(replayed, "c1", "rejected")
	birth(replayed, "c2", "pending")
	got := f.run("birth-after-provisioning", Params{})
	expect(t, got, replayed)
	if !strings.Contains(got[replayed].Message, "2 provisioning requests") {
		t.Errorf("message: %s", got[replayed].Message)
	}
}

func TestCheckTopicPolicy(t *testing.T) {
	f := newFixture(t)
	put := func(name, topics string) {
		if _, err := f.st.PutTemplate(t.Context(), name, json.RawMessage(`{"name":"`+name+`","device":{"topics":`+topics+`}}`), true, "test"); err != nil {
			t.Fatal(err)
		}
	}
	put("good", `{"publish":["devices/{{device.id}}/telemetry"],"subscribe":["devices/{{device.id}}/commands/#","fleet/lights/#"]}`)
	put("all", `{"subscribe":["#"]}`)
	put("others", `{"subscribe":["devices/+/telemetry"]}`)
	put("named", `{"publish":["devices/dev_other/x"]}`)
	put("sys", `{"subscribe":["$SYS/broker/#"]}`)
	put("groups", `{"subscribe":["fleet/#"]}`)
	put("loose", `{"publish":["telemetry/+/raw"]}`)
	got := f.run("topic-policy-broad", Params{})
	expect(t, got, "all", "others", "named", "sys", "groups", "loose")
}

func TestCheckNotSeen(t *testing.T) {
	f := newFixture(t)
	f.setNow(epoch.Add(-60 * 24 * time.Hour))
	gone := f.device(fleet.StateActive, nil)
	neverSeen := f.device(fleet.StateProvisioned, nil)
	seen := f.device(fleet.StateActive, nil)
	f.device(fleet.StateDecommissioned, nil) // not expected to connect
	f.setNow(epoch.Add(-10 * 24 * time.Hour))
	recent := f.device(fleet.StateProvisioned, nil) // became connectable recently
	f.setNow(epoch)
	if err := f.st.SavePresence(t.Context(), []store.Presence{
		{DeviceID: gone, Node: "n1", ConnectedAt: epoch.Add(-45 * 24 * time.Hour), LastSeen: epoch.Add(-40 * 24 * time.Hour)},
		{DeviceID: seen, Node: "n1", ConnectedAt: epoch.Add(-time.Hour), LastSeen: epoch.Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	got := f.run("not-seen", Params{})
	expect(t, got, gone, neverSeen)
	_ = recent
	// With a longer period only the never-seen one (60 days) is reported.
	expect(t, f.run("not-seen", Params{NotSeenAfter: 50 * 24 * time.Hour}), neverSeen)
}

func TestCheckClientIDConflict(t *testing.T) {
	f := newFixture(t)
	loop := f.device(fleet.StateActive, nil)
	fine := f.device(fleet.StateActive, nil)
	w := epoch.Truncate(5 * time.Minute)
	if err := f.st.SaveMeterWindows(t.Context(), "n1", []store.MeterWindow{
		{DeviceID: loop, Start: w, Seconds: 300, Connects: 3, Takeovers: 2, SourceIPs: []string{"10.0.0.1"}},
		{DeviceID: loop, Start: w.Add(-5 * time.Minute), Seconds: 300, Connects: 2, Takeovers: 1, SourceIPs: []string{"10.0.0.1"}},
		{DeviceID: fine, Start: w, Seconds: 300, Connects: 2, Takeovers: 1, SourceIPs: []string{"10.0.0.2"}},
	}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.run("client-id-conflict", Params{}), loop)
	expect(t, f.run("client-id-conflict", Params{TakeoverThreshold: 1}), loop, fine)
}

func TestCheckHistoryBroken(t *testing.T) {
	f := newFixture(t)
	tampered := f.device(fleet.StateActive, nil)
	f.device(fleet.StateActive, nil)
	expect(t, f.run("history-broken", Params{}))
	if _, err := f.st.DB().ExecContext(t.Context(), `UPDATE events SET actor = 'mallory' WHERE subject = ? AND seq = 1`, tampered); err != nil {
		t.Fatal(err)
	}
	got := f.run("history-broken", Params{})
	expect(t, got, tampered)
	if !strings.Contains(got[tampered].Message, "altered") {
		t.Errorf("message: %s", got[tampered].Message)
	}
	// Deleting the events of a chain is found through its recorded head.
	gone := f.device(fleet.StateActive, nil)
	if _, err := f.st.DB().ExecContext(t.Context(), `DELETE FROM events WHERE subject = ?`, gone); err != nil {
		t.Fatal(err)
	}
	expect(t, f.run("history-broken", Params{}), tampered, gone)
}

func TestCheckMeteringOff(t *testing.T) {
	f := newFixture(t)
	a := f.device(fleet.StateActive, nil)
	b := f.device(fleet.StateActive, nil)
	c := f.device(fleet.StateActive, nil)
	w := epoch.Truncate(5 * time.Minute)
	if err := f.st.SavePresence(t.Context(), []store.Presence{
		{DeviceID: a, Connected: true, Node: "metering", ConnectedAt: w, LastSeen: epoch},
		{DeviceID: b, Connected: true, Node: "silent", ConnectedAt: w, LastSeen: epoch},
		{DeviceID: c, Connected: true, Node: "no-packets", ConnectedAt: w, LastSeen: epoch},
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveMeterWindows(t.Context(), "metering", []store.MeterWindow{{DeviceID: a, Start: w, Seconds: 300, Connects: 1, MsgsIn: 4, BytesIn: 200}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveMeterWindows(t.Context(), "no-packets", []store.MeterWindow{{DeviceID: c, Start: w, Seconds: 300, Connects: 1}}); err != nil {
		t.Fatal(err)
	}
	got := f.run("metering-off", Params{})
	expect(t, got, "silent", "no-packets")
	if got["silent"].SubjectKind != SubjectNode {
		t.Errorf("subject kind = %s", got["silent"].SubjectKind)
	}
}

func TestCheckVulnerable(t *testing.T) {
	f := newFixture(t)
	importTestdata(t, f.st)
	bom := `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"tlslib","version":"1.1.0","purl":"pkg:golang/github.com/acme/tlslib@v1.1.0"}]}`
	fw := f.device(fleet.StateActive, nil, func(d *fleet.Device) {
		d.Provisioning.Firmware = []fleet.FirmwareVersion{{Component: "acme-fw", Version: "1.3.0"}}
	})
	sbom := f.device(fleet.StateActive, nil, func(d *fleet.Device) { d.Manufacturing.BOM = json.RawMessage(bom) })
	f.device(fleet.StateActive, nil, func(d *fleet.Device) {
		d.Provisioning.Firmware = []fleet.FirmwareVersion{{Component: "acme-fw", Version: "1.4.2"}}
	})
	got := f.run("vulnerable-firmware", Params{})
	expect(t, got, fw, sbom)
	var ev struct {
		Advisories []string `json:"advisories"`
		Matches    []struct {
			Fixed []string `json:"fixed"`
		} `json:"matches"`
	}
	if err := json.Unmarshal(got[fw].Evidence, &ev); err != nil || strings.Join(ev.Advisories, ",") != "MUSTER-2026-0001" || ev.Matches[0].Fixed[0] != "1.4.2" {
		t.Errorf("evidence = %s (%v)", got[fw].Evidence, err)
	}
	if !strings.Contains(got[sbom].Message, "MUSTER-2026-0002") {
		t.Errorf("SBOM finding: %s", got[sbom].Message)
	}
}

// importTestdata imports the vuln package's test advisories.
func importTestdata(t testing.TB, st *store.Store) {
	t.Helper()
	var advs []store.Advisory
	for _, n := range []string{"MUSTER-2026-0001.json", "MUSTER-2026-0002.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "vuln", "testdata", "osv", n))
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &a)
		advs = append(advs, store.Advisory{ID: a.ID, Modified: epoch, Source: n, Doc: string(raw)})
	}
	if _, err := st.ImportAdvisories(t.Context(), advs, false, "test"); err != nil {
		t.Fatal(err)
	}
}
