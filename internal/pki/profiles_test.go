package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOIDArcIsTheUUID pins the arc to the documented UUID.
func TestOIDArcIsTheUUID(t *testing.T) {
	const uuid = "e3cc46fb-7c0f-403f-b9d2-3fad3cbaeef9"
	n, ok := new(big.Int).SetString(strings.ReplaceAll(uuid, "-", ""), 16)
	if !ok {
		t.Fatal("bad UUID")
	}
	if want := "2.25." + n.String(); MusterOIDArc != want {
		t.Errorf("MusterOIDArc = %s, want %s", MusterOIDArc, want)
	}
	for _, oid := range []string{BirthPolicyOID, OperationalPolicyOID} {
		if _, err := x509.ParseOID(oid); err != nil {
			t.Errorf("%s: %v", oid, err)
		}
	}
}

func TestIssueBirth(t *testing.T) {
	h := newHierarchy(t)
	p := BirthProfile{Factory: "f1", Model: "thermo-3", Serial: "SN:0042", HardwareRevision: "B2"}
	cert, _ := issue(t, h.mfg, p)

	s := cert.Subject
	if s.CommonName != "SN:0042" || s.SerialNumber != "SN:0042" || !slices.Equal(s.Organization, []string{"f1"}) || !slices.Equal(s.OrganizationalUnit, []string{"thermo-3"}) {
		t.Errorf("subject %q", s)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:muster:device:f1:SN%3A0042" {
		t.Errorf("URIs %v", cert.URIs)
	}
	assertDeviceCert(t, cert, BirthPolicyOID)
	if !cert.NotAfter.Equal(h.mfg.Certificate().NotAfter) {
		t.Errorf("20-year birth certificate not clamped to CA expiry: %s vs %s", cert.NotAfter, h.mfg.Certificate().NotAfter)
	}
	if got := cert.NotBefore; time.Since(got) < 4*time.Minute || time.Since(got) > 6*time.Minute {
		t.Errorf("NotBefore %s is not backdated by 5 minutes", got)
	}

	id, err := IdentityOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Kind: IdentityBirth, Factory: "f1", Serial: "SN:0042", Model: "thermo-3", HardwareRevision: "B2", Certificate: cert}
	if id.Kind != want.Kind || id.Factory != want.Factory || id.Serial != want.Serial || id.Model != want.Model ||
		id.HardwareRevision != want.HardwareRevision || id.Certificate != cert || id.External {
		t.Errorf("IdentityOf = %+v", id)
	}

	// Without a CA clamp the default is 20 years.
	long, err := BirthProfile{Factory: "f", Serial: "s"}.Template(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if years := long.NotAfter.Sub(long.NotBefore).Hours() / 8766; years < 19.99 || years > 20.01 {
		t.Errorf("default birth validity %.2f years", years)
	}

	// openssl accepts it as a TLS client certificate and sees the policy.
	dir := t.TempDir()
	leafFile := writeFile(t, dir, "leaf.pem", certPEM(cert))
	openssl(t, false, "verify", "-purpose", "sslclient", "-CAfile", writeFile(t, dir, "root.pem", h.root.CertificatePEM()),
		"-untrusted", writeFile(t, dir, "mfg.pem", h.mfg.CertificatePEM()), leafFile)
	out := openssl(t, false, "x509", "-in", leafFile, "-noout", "-text")
	for _, want := range []string{"Policy: " + BirthPolicyOID, "URI:urn:muster:device:f1:SN%3A0042", "TLS Web Client Authentication"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}
}

func TestIssueOperational(t *testing.T) {
	h := newHierarchy(t)
	cert, _ := issue(t, h.op, OperationalProfile{DeviceID: "dev-7", Validity: 48 * time.Hour})
	if cert.Subject.CommonName != "dev-7" || len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:muster:device-id:dev-7" {
		t.Errorf("subject %q URIs %v", cert.Subject, cert.URIs)
	}
	assertDeviceCert(t, cert, OperationalPolicyOID)
	if d := cert.NotAfter.Sub(cert.NotBefore); d != 48*time.Hour+backdate {
		t.Errorf("validity %v", d)
	}
	id, err := IdentityOf(cert)
	if err != nil || id.Kind != IdentityOperational || id.DeviceID != "dev-7" {
		t.Errorf("IdentityOf = %+v, %v", id, err)
	}
}

func assertDeviceCert(t *testing.T, cert *x509.Certificate, policy string) {
	t.Helper()
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("device certificate is a CA or lacks basic constraints")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b", cert.KeyUsage)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU %v %v, want clientAuth only", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if len(cert.Policies) != 1 || cert.Policies[0].String() != policy {
		t.Errorf("policies %v, want %s", cert.Policies, policy)
	}
	if len(cert.SubjectKeyId) != 20 || len(cert.AuthorityKeyId) == 0 {
		t.Error("missing key identifiers")
	}
	if len(cert.SerialNumber.Bytes()) != serialLen {
		t.Errorf("serial %x", cert.SerialNumber)
	}
}

func TestIssueServer(t *testing.T) {
	h := newHierarchy(t)
	cert, _ := issue(t, h.server, ServerProfile{DNSNames: []string{"eu.muster.test"}, IPs: []net.IP{net.ParseIP("192.0.2.1")}})
	if cert.Subject.CommonName != "eu.muster.test" || !slices.Equal(cert.DNSNames, []string{"eu.muster.test"}) || len(cert.IPAddresses) != 1 {
		t.Errorf("names: %q %v %v", cert.Subject, cert.DNSNames, cert.IPAddresses)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v", cert.ExtKeyUsage)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != DefaultServerValidity+backdate {
		t.Errorf("validity %v", d)
	}
	if _, err := IdentityOf(cert); !errors.Is(err, ErrNotDeviceCertificate) {
		t.Errorf("IdentityOf(server cert) err = %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "eu.muster.test", Roots: poolOf([]*x509.Certificate{h.root.Certificate()}),
		Intermediates: poolOf([]*x509.Certificate{h.server.Certificate()})}); err != nil {
		t.Errorf("server certificate does not verify: %v", err)
	}
}

func TestIssueRefusals(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)
	short, err := h.root.NewSubCA(ctx, h.ks, "expired-op", PurposeOperational, ECDSAP256, pkix.Name{}, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	good := newP256(t).Public()
	tests := []struct {
		name    string
		ca      *CA
		profile Profile
		pub     any
		wantIs  error
		wantMsg string
	}{
		{"birth from operational CA", h.op, BirthProfile{Factory: "f", Serial: "s"}, good, ErrWrongIssuer, "manufacturing"},
		{"operational from manufacturing CA", h.mfg, OperationalProfile{DeviceID: "d"}, good, ErrWrongIssuer, "operational"},
		{"server from operational CA", h.op, ServerProfile{DNSNames: []string{"x"}}, good, ErrWrongIssuer, "server"},
		{"anything from root", h.root, OperationalProfile{DeviceID: "d"}, good, ErrWrongIssuer, "root"},
		{"missing serial", h.mfg, BirthProfile{Factory: "f"}, good, nil, "serial is required"},
		{"missing factory", h.mfg, BirthProfile{Serial: "s"}, good, nil, "factory is required"},
		{"control character", h.mfg, BirthProfile{Factory: "f", Serial: "s\n1"}, good, nil, "control"},
		{"over-long model", h.mfg, BirthProfile{Factory: "f", Serial: "s", Model: strings.Repeat("m", 65)}, good, nil, "at most 64"},
		{"invalid UTF-8", h.op, OperationalProfile{DeviceID: "\xff"}, good, nil, "UTF-8"},
		{"missing device ID", h.op, OperationalProfile{}, good, nil, "device ID is required"},
		{"negative validity", h.op, OperationalProfile{DeviceID: "d", Validity: -time.Hour}, good, nil, "negative"},
		{"server without names", h.server, ServerProfile{}, good, nil, "at least one"},
		{"bad DNS name", h.server, ServerProfile{DNSNames: []string{"a b"}}, good, nil, "invalid DNS name"},
		{"weak key", h.op, OperationalProfile{DeviceID: "d"}, newP224(t).Public(), nil, CSRWeakKey},
		{"no key", h.op, OperationalProfile{DeviceID: "d"}, nil, nil, CSRUnsupportedKey},
		{"expired CA", short, OperationalProfile{DeviceID: "d"}, good, nil, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := tt.ca.Issue(ctx, tt.profile, tt.pub)
			if err == nil {
				t.Fatalf("issued %q", cert.Subject)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.op.Issue(cancelled, OperationalProfile{DeviceID: "d"}, good); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v", err)
	}
}

// caProfile is a hostile profile that asks for a CA certificate.
type caProfile struct{ OperationalProfile }

func (p caProfile) Template(now time.Time) (*x509.Certificate, error) {
	tmpl, err := p.OperationalProfile.Template(now)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	return tmpl, nil
}

func TestIssueNeverMakesCA(t *testing.T) {
	h := newHierarchy(t)
	cert, _ := issue(t, h.op, caProfile{OperationalProfile{DeviceID: "d"}})
	if cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Error("a profile obtained a CA certificate")
	}
}

func TestIdentityOfRefuses(t *testing.T) {
	h := newHierarchy(t)
	pub := newP256(t).Public()
	birthOID, _ := x509.ParseOID(BirthPolicyOID)
	opOID, _ := x509.ParseOID(OperationalPolicyOID)
	base := func(p Profile) *x509.Certificate {
		tmpl, err := p.Template(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tmpl
	}
	bothPolicies := base(OperationalProfile{DeviceID: "d"})
	bothPolicies.Policies = []x509.OID{birthOID, opOID}
	cnMismatch := base(OperationalProfile{DeviceID: "d"})
	cnMismatch.Subject.CommonName = "other"
	factoryMismatch := base(BirthProfile{Factory: "f1", Serial: "s"})
	factoryMismatch.Subject.Organization = []string{"f2"}
	twoURIs := base(BirthProfile{Factory: "f1", Serial: "s"})
	twoURIs.URIs = append(twoURIs.URIs, base(BirthProfile{Factory: "f1", Serial: "t"}).URIs...)
	noURI := base(OperationalProfile{DeviceID: "d"})
	noURI.URIs = nil
	wrongNamespace := base(OperationalProfile{DeviceID: "d"})
	wrongNamespace.URIs = base(BirthProfile{Factory: "d", Serial: "d"}).URIs

	for name, tmpl := range map[string]*x509.Certificate{
		"both policies":    bothPolicies,
		"CN mismatch":      cnMismatch,
		"factory mismatch": factoryMismatch,
		"two URNs":         twoURIs,
		"no URN":           noURI,
		"wrong namespace":  wrongNamespace,
	} {
		cert := signRaw(t, h.op, tmpl, pub)
		if id, err := IdentityOf(cert); !errors.Is(err, ErrNotDeviceCertificate) {
			t.Errorf("%s: IdentityOf = %+v, %v; want ErrNotDeviceCertificate", name, id, err)
		}
	}
}
