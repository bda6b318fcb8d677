package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// addRegion stores an enabled region called name.
func addRegion(t *testing.T, st *store.Store, name string) {
	t.Helper()
	g := &store.Region{Name: name, ProvisionURL: "https://" + name + ".example:9443", MQTTURL: "mqtts://" + name + ".example:8883",
		ProbeURL: "https://" + name + ".example:9443/v1/probe", Weight: 1, Status: store.RegionEnabled}
	if err := st.CreateRegion(context.Background(), g, "admin"); err != nil {
		t.Fatal(err)
	}
}

// issueOperational issues an operational certificate for a fresh key.
func issueOperational(t *testing.T, a *Authority, deviceID string) *x509.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Signer.Issue(context.Background(), pki.OperationalProfile{DeviceID: deviceID, Validity: 24 * time.Hour}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestRegionalCA: a region's CA on both backends chains to the root,
// issues operational certificates that the device listener's verifier
// accepts, is used for its region only, loads on a second node through the
// shared keys, and is refused a second time or for an unknown region with
// nothing stored.
func TestRegionalCA(t *testing.T) {
	for name, st := range keyBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ks := NewSharedKeys(fastKeys(t, t.TempDir(), testPassphrase), st)
			r, err := Open(ctx, st, ks, Options{})
			if err != nil {
				t.Fatal(err)
			}
			addRegion(t, st, "eu-west")
			addRegion(t, st, "us-east")
			shared, err := r.IssuerFor(ctx, pki.PurposeOperational, "")
			if err != nil {
				t.Fatal(err)
			}

			a, err := r.AddRegionalCA(ctx, "eu-west", "admin/root")
			if err != nil {
				t.Fatalf("AddRegionalCA: %v", err)
			}
			if a.Purpose != string(PurposeRegional) || a.Factory != "eu-west" || a.Signer == nil {
				t.Fatalf("regional CA = %+v", a.CA)
			}
			if cn := a.Cert.Subject.CommonName; cn != "Muster Operational CA eu-west" {
				t.Errorf("subject CN = %q", cn)
			}
			root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(root.Cert)
			inter := x509.NewCertPool()
			inter.AddCert(a.Cert)

			for region, want := range map[string]string{"eu-west": a.ID, "us-east": shared.ID, "": shared.ID, "gone": shared.ID} {
				got, err := r.OperationalFor(ctx, region)
				if err != nil || got.ID != want {
					t.Errorf("OperationalFor(%q) = %v, %v; want %s", region, got, err, want)
				}
			}

			cert := issueOperational(t, a, "dev_eu1")
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("a certificate of the regional CA does not verify against the root: %v", err)
			}
			if id, err := verify(t, r, cert, time.Now()); err != nil || id.Kind != pki.IdentityOperational || id.DeviceID != "dev_eu1" {
				t.Fatalf("device listener verification = %+v, %v", id, err)
			}

			// Moving between regions: renew exactly when the CA differs
			// and a regional CA is involved.
			sharedCert := issueOperational(t, shared, "dev_us1")
			for _, c := range []struct {
				cert   *x509.Certificate
				region string
				want   bool
			}{{cert, "eu-west", false}, {cert, "us-east", true}, {sharedCert, "eu-west", true}, {sharedCert, "us-east", false}} {
				got, err := r.NeedsReissue(ctx, c.cert, c.region)
				if err != nil || got != c.want {
					t.Errorf("NeedsReissue(%s's certificate, %s) = %v, %v; want %v", c.cert.Subject.CommonName, c.region, got, err, c.want)
				}
			}

			// Another node with an empty key directory signs with it.
			r2, err := Open(ctx, st, NewSharedKeys(fastKeys(t, t.TempDir(), testPassphrase), st), Options{})
			if err != nil {
				t.Fatalf("second node: %v", err)
			}
			a2, err := r2.OperationalFor(ctx, "eu-west")
			if err != nil || a2.ID != a.ID || a2.Signer == nil {
				t.Fatalf("second node's CA for eu-west = %v, %v", a2, err)
			}
			if _, err := verify(t, r2, issueOperational(t, a2, "dev_eu2"), time.Now()); err != nil {
				t.Fatalf("second node's certificate: %v", err)
			}

			// Bad input: nothing stored.
			before, err := st.ListCAs(ctx, store.CAFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.AddRegionalCA(ctx, "eu-west", "admin/root"); !errors.Is(err, store.ErrDuplicate) || !strings.Contains(err.Error(), a.ID) {
				t.Errorf("second CA for eu-west: err = %v, want ErrDuplicate naming %s", err, a.ID)
			}
			if _, err := r.AddRegionalCA(ctx, "nowhere", "admin/root"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("CA for an unknown region: err = %v, want ErrNotFound", err)
			}
			after, _ := st.ListCAs(ctx, store.CAFilter{})
			if len(after) != len(before) {
				t.Errorf("refused requests stored %d CAs", len(after)-len(before))
			}

			// The chain export lists the region's chain: its CA, then the root.
			chains, err := r.Chains(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range chains {
				if c.Purpose == PurposeRegional && c.Factory == "eu-west" {
					found = strings.Count(c.PEM, "BEGIN CERTIFICATE") == 2
				}
			}
			if !found {
				t.Errorf("no two-certificate chain for eu-west in %+v", chains)
			}

			// Rotation: the region's new CA signs from now on; the old one
			// stays trusted for the overlap. A region without a CA, and
			// a regional rotation naming no region, are refused.
			rotated, err := r.Rotate(ctx, PurposeRegional, "eu-west", time.Hour, "admin/root")
			if err != nil {
				t.Fatalf("rotate eu-west's CA: %v", err)
			}
			if rotated.ID == a.ID || rotated.Purpose != string(PurposeRegional) || rotated.Factory != "eu-west" {
				t.Fatalf("rotated CA = %+v", rotated.CA)
			}
			if got, err := r.OperationalFor(ctx, "eu-west"); err != nil || got.ID != rotated.ID {
				t.Fatalf("OperationalFor(eu-west) after rotation = %v, %v; want %s", got, err, rotated.ID)
			}
			if _, err := verify(t, r, issueOperational(t, rotated, "dev_eu3"), time.Now()); err != nil {
				t.Fatalf("a certificate of the rotated CA: %v", err)
			}
			if _, err := verify(t, r, cert, time.Now()); err != nil {
				t.Fatalf("a certificate of the old CA within the overlap: %v", err)
			}
			if _, err := r.Rotate(ctx, PurposeRegional, "us-east", time.Hour, "admin/root"); !errors.Is(err, ErrNoCA) {
				t.Errorf("rotating the CA of a region without one: %v, want ErrNoCA", err)
			}
			if _, err := r.Rotate(ctx, PurposeRegional, "", time.Hour, "admin/root"); err == nil || !strings.Contains(err.Error(), "regional CA for one region") {
				t.Errorf("a regional rotation naming no region: %v", err)
			}
		})
	}
}

// BenchmarkOperationalFor measures choosing the issuing CA per
// certificate: a region without its own CA (the shared one) and a region
// with one, both from the cached view.
func BenchmarkOperationalFor(b *testing.B) {
	r, st, _ := testRegistry(b, Options{})
	ctx := context.Background()
	for _, name := range []string{"eu", "us"} {
		g := &store.Region{Name: name, ProvisionURL: "https://" + name + ".example", MQTTURL: "mqtts://" + name + ".example",
			ProbeURL: "https://" + name + ".example/v1/probe", Weight: 1, Status: store.RegionEnabled}
		if err := st.CreateRegion(ctx, g, "admin"); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.AddRegionalCA(ctx, "eu", "admin"); err != nil {
		b.Fatal(err)
	}
	for _, region := range []string{"us", "eu"} {
		b.Run(region, func(b *testing.B) {
			for b.Loop() {
				if _, err := r.OperationalFor(ctx, region); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// revokedSerials revokes the certificates whose serials it holds.
type revokedSerials map[string]bool

func (r revokedSerials) IsRevoked(_ context.Context, _ *x509.Certificate, serial *big.Int) (bool, error) {
	return r[serial.Text(16)], nil
}

// TestRegionCALifecycle: a region created with its CA gets both in one
// write; deleting the (empty) region retires the CA, which stops issuing
// while what it issued keeps verifying at the device listener and the
// gateway (both verify with the registry's anchors) until it expires or
// is revoked, and is still served CRLs and OCSP; the name created again
// gets a new CA. Refused creates store nothing.
func TestRegionCALifecycle(t *testing.T) {
	for name, st := range keyBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r, err := Open(ctx, st, NewSharedKeys(fastKeys(t, t.TempDir(), testPassphrase), st), Options{})
			if err != nil {
				t.Fatal(err)
			}
			region := func(name string) *store.Region {
				return &store.Region{Name: name, ProvisionURL: "https://" + name + ".example:9443", MQTTURL: "mqtts://" + name + ".example:8883",
					ProbeURL: "https://" + name + ".example:9443/v1/probe", Weight: 1, Status: store.RegionEnabled}
			}
			first, err := r.CreateRegion(ctx, region("ap-south"), "admin/root")
			if err != nil {
				t.Fatalf("CreateRegion: %v", err)
			}
			if g, err := st.Region(ctx, "ap-south"); err != nil || g.Version != 1 {
				t.Fatalf("region = %+v, %v", g, err)
			}
			if a, err := r.OperationalFor(ctx, "ap-south"); err != nil || a.ID != first.ID {
				t.Fatalf("OperationalFor(ap-south) = %v, %v; want %s", a, err, first.ID)
			}
			cert := issueOperational(t, first, "dev_ap1")
			revoked := issueOperational(t, first, "dev_ap2")

			// Refused: a taken name. Nothing stored, no key-less CA.
			before, _ := st.ListCAs(ctx, store.CAFilter{})
			if _, err := r.CreateRegion(ctx, region("ap-south"), "admin/root"); !errors.Is(err, store.ErrDuplicate) {
				t.Errorf("CreateRegion(taken name) = %v, want ErrDuplicate", err)
			}
			if after, _ := st.ListCAs(ctx, store.CAFilter{}); len(after) != len(before) {
				t.Errorf("a refused create stored %d CAs", len(after)-len(before))
			}

			if err := st.DeleteRegion(ctx, "ap-south", "admin/root"); err != nil {
				t.Fatalf("DeleteRegion: %v", err)
			}
			r.Changed() // what the store's CA notice does on a running node
			if _, err := r.RegionalCA(ctx, "ap-south"); !errors.Is(err, ErrNoCA) {
				t.Errorf("RegionalCA after the delete = %v, want ErrNoCA: the CA must no longer issue", err)
			}
			shared, _ := r.IssuerFor(ctx, pki.PurposeOperational, "")
			if a, err := r.OperationalFor(ctx, "ap-south"); err != nil || a.ID != shared.ID {
				t.Errorf("OperationalFor(deleted region) = %v, %v; want the shared CA", a, err)
			}
			if need, err := r.NeedsReissue(ctx, cert, "us-east"); err != nil || !need {
				t.Errorf("NeedsReissue(cert of the retired CA) = %v, %v; want true", need, err)
			}
			// Still trusted until it expires, unless revoked.
			v, err := pki.NewVerifier(r, revokedSerials{revoked.SerialNumber.Text(16): true})
			if err != nil {
				t.Fatal(err)
			}
			if id, err := v.Verify(ctx, []*x509.Certificate{cert}, time.Now()); err != nil || id.DeviceID != "dev_ap1" {
				t.Errorf("certificate of the retired CA = %+v, %v; want it accepted until it expires", id, err)
			}
			if _, err := v.Verify(ctx, []*x509.Certificate{revoked}, time.Now()); err == nil {
				t.Errorf("a revoked certificate of the retired CA was accepted")
			}
			if _, err := v.Verify(ctx, []*x509.Certificate{cert}, cert.NotAfter.Add(time.Minute)); err == nil {
				t.Errorf("an expired certificate of the retired CA was accepted")
			}
			issuers, err := r.Issuers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			served := false
			for _, iss := range issuers {
				served = served || (iss.ID == first.ID && iss.CA != nil)
			}
			if !served {
				t.Errorf("the retired CA is not among the revocation issuers with its key: no CRL or OCSP for its certificates")
			}

			// The name again: a new CA, new key, new certificate.
			second, err := r.CreateRegion(ctx, region("ap-south"), "admin/root")
			if err != nil {
				t.Fatalf("re-create: %v", err)
			}
			if second.ID == first.ID || second.SubjectKeyID == first.SubjectKeyID || second.Cert.SerialNumber.Cmp(first.Cert.SerialNumber) == 0 {
				t.Errorf("re-created region reuses CA %s (%s, serial %x)", first.ID, first.SubjectKeyID, first.Cert.SerialNumber)
			}
			if a, err := r.OperationalFor(ctx, "ap-south"); err != nil || a.ID != second.ID {
				t.Errorf("OperationalFor(re-created) = %v, %v; want %s", a, err, second.ID)
			}
		})
	}
}
