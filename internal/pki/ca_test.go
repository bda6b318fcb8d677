package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHierarchyCertificates(t *testing.T) {
	h := newHierarchy(t)
	root := h.root.Certificate()

	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.MaxPathLen != 1 || root.MaxPathLenZero {
		t.Errorf("root basic constraints: IsCA=%v MaxPathLen=%d", root.IsCA, root.MaxPathLen)
	}
	if len(root.ExtKeyUsage) != 0 {
		t.Errorf("root has EKUs %v", root.ExtKeyUsage)
	}
	if !bytes.Equal(root.AuthorityKeyId, root.SubjectKeyId) || len(root.SubjectKeyId) != 20 {
		t.Errorf("root key ids: SKI %x AKI %x", root.SubjectKeyId, root.AuthorityKeyId)
	}
	if root.Subject.CommonName != "Muster root CA" || !slices.Contains(root.Subject.OrganizationalUnit, "Muster root CA") {
		t.Errorf("root subject %q does not name its purpose", root.Subject)
	}

	wantEKU := map[Purpose]x509.ExtKeyUsage{
		PurposeManufacturing: x509.ExtKeyUsageClientAuth,
		PurposeOperational:   x509.ExtKeyUsageClientAuth,
		PurposeServer:        x509.ExtKeyUsageServerAuth,
	}
	for _, ca := range []*CA{h.root, h.mfg, h.op, h.server} {
		c := ca.Certificate()
		if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
			t.Errorf("%s CA key usage %b, want %b", ca.Purpose(), c.KeyUsage, want)
		}
		if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) != serialLen {
			t.Errorf("%s CA serial %x is not a positive 16-byte number", ca.Purpose(), c.SerialNumber)
		}
		if got, err := purposeOf(c); err != nil || got != ca.Purpose() {
			t.Errorf("purpose read back from %s CA: %q, %v", ca.Purpose(), got, err)
		}
		if ca == h.root {
			continue
		}
		if err := c.CheckSignatureFrom(root); err != nil {
			t.Errorf("%s CA not signed by root: %v", ca.Purpose(), err)
		}
		if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("%s CA basic constraints: IsCA=%v MaxPathLen=%d zero=%v", ca.Purpose(), c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{wantEKU[ca.Purpose()]}) {
			t.Errorf("%s CA EKU %v", ca.Purpose(), c.ExtKeyUsage)
		}
		if !bytes.Equal(c.AuthorityKeyId, root.SubjectKeyId) {
			t.Errorf("%s CA AKI %x, want root SKI %x", ca.Purpose(), c.AuthorityKeyId, root.SubjectKeyId)
		}
		if c.NotAfter.After(root.NotAfter) {
			t.Errorf("%s CA outlives the root", ca.Purpose())
		}
	}
	// A caller-supplied, extended marker is kept as is.
	if got := h.mfg.Certificate().Subject.OrganizationalUnit; !slices.Equal(got, []string{"Muster manufacturing CA for factory f1"}) {
		t.Errorf("manufacturing CA OU = %q", got)
	}
	if got := h.op.Certificate().Subject.CommonName; got != "Muster operational CA" {
		t.Errorf("operational CA CN = %q", got)
	}

	// openssl agrees the intermediates are CAs of the root, with path length 0.
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", h.root.CertificatePEM())
	opFile := writeFile(t, dir, "op.pem", h.op.CertificatePEM())
	openssl(t, false, "verify", "-CAfile", rootFile, opFile)
	if out := openssl(t, false, "x509", "-in", opFile, "-noout", "-text"); !strings.Contains(out, "CA:TRUE, pathlen:0") {
		t.Errorf("openssl shows no pathlen:0:\n%s", out)
	}
}

func TestSubCAValidityClampedToParent(t *testing.T) {
	ctx := context.Background()
	ks := newTestKeyStore(t)
	root, err := NewRootCA(ctx, ks, "root", ECDSAP256, pkix.Name{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := root.NewSubCA(ctx, ks, "sub", PurposeOperational, ECDSAP256, pkix.Name{}, 100*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Certificate().NotAfter.Equal(root.Certificate().NotAfter) {
		t.Errorf("sub CA NotAfter %s, want clamped to root's %s", sub.Certificate().NotAfter, root.Certificate().NotAfter)
	}
}

func TestNewCARefusals(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)
	tests := []struct {
		name string
		run  func(label string) error
	}{
		{"root purpose for sub CA", func(l string) error {
			_, err := h.root.NewSubCA(ctx, h.ks, l, PurposeRoot, ECDSAP256, pkix.Name{}, time.Hour)
			return err
		}},
		{"intermediate as parent", func(l string) error {
			_, err := h.op.NewSubCA(ctx, h.ks, l, PurposeOperational, ECDSAP256, pkix.Name{}, time.Hour)
			return err
		}},
		{"zero validity", func(l string) error {
			_, err := NewRootCA(ctx, h.ks, l, ECDSAP256, pkix.Name{}, 0)
			return err
		}},
		{"marker of another purpose", func(l string) error {
			_, err := h.root.NewSubCA(ctx, h.ks, l, PurposeServer, ECDSAP256,
				pkix.Name{OrganizationalUnit: []string{"Muster operational CA"}}, time.Hour)
			return err
		}},
		{"unknown purpose", func(l string) error {
			_, err := h.root.NewSubCA(ctx, h.ks, l, "billing", ECDSAP256, pkix.Name{}, time.Hour)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run("refused"); err == nil {
				t.Fatal("accepted")
			}
			// Refusals happen before a key is generated, so the label stays free.
			if _, err := h.ks.Load(ctx, "refused"); !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("a key was generated for a refused CA: %v", err)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)

	loaded, err := LoadCA(ctx, h.ks, "mfg-f1", append(h.mfg.CertificatePEM(), h.root.CertificatePEM()...))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Purpose() != PurposeManufacturing || !loaded.Certificate().Equal(h.mfg.Certificate()) {
		t.Fatalf("loaded %s CA %q", loaded.Purpose(), loaded.Certificate().Subject)
	}
	leaf, _ := issue(t, loaded, BirthProfile{Factory: "f1", Serial: "s1"})
	if err := leaf.CheckSignatureFrom(h.mfg.Certificate()); err != nil {
		t.Errorf("certificate from loaded CA does not verify: %v", err)
	}

	leafPEM := certPEM(leaf)
	unmarked := signRaw(t, h.root, &x509.Certificate{
		Subject: pkix.Name{CommonName: "no marker"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{1},
	}, h.op.Certificate().PublicKey)

	tests := []struct {
		name, label string
		pem         []byte
		wantIs      error
		wantMsg     string
	}{
		{"key of another CA", "operational", h.mfg.CertificatePEM(), ErrKeyMismatch, "key label"},
		{"missing key", "absent", h.mfg.CertificatePEM(), ErrKeyNotFound, ""},
		{"leaf certificate", "mfg-f1", leafPEM, nil, "not a CA certificate"},
		{"no purpose marker", "operational", certPEM(unmarked), nil, "not a Muster CA"},
		{"no PEM", "mfg-f1", []byte("junk"), nil, "no CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(ctx, h.ks, tt.label, tt.pem)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)

	next, err := h.op.Rotate(ctx, h.root, h.ks, "operational-2")
	if err != nil {
		t.Fatal(err)
	}
	old, cur := h.op.Certificate(), next.Certificate()
	if next.Purpose() != PurposeOperational || !bytes.Equal(cur.RawSubject, old.RawSubject) {
		t.Errorf("rotated CA: purpose %s subject %q, want operational %q", next.Purpose(), cur.Subject, old.Subject)
	}
	if bytes.Equal(cur.SubjectKeyId, old.SubjectKeyId) || cur.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("rotated CA reuses the old key or serial")
	}
	if err := cur.CheckSignatureFrom(h.root.Certificate()); err != nil {
		t.Errorf("rotated CA not signed by root: %v", err)
	}
	if d := cur.NotAfter.Sub(cur.NotBefore) - old.NotAfter.Sub(old.NotBefore); d < -time.Minute || d > time.Minute {
		t.Errorf("rotated CA validity differs by %v", d)
	}

	// During the overlap, certificates of both generations verify against a
	// pool holding both CAs, each against its own issuer.
	opts := x509.VerifyOptions{
		Roots:     poolOf([]*x509.Certificate{old, cur}),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, ca := range []*CA{h.op, next} {
		leaf, _ := issue(t, ca, OperationalProfile{DeviceID: "d"})
		chains, err := leaf.Verify(opts)
		if err != nil {
			t.Fatalf("leaf of %x does not verify: %v", ca.Certificate().SubjectKeyId, err)
		}
		if !chains[0][1].Equal(ca.Certificate()) {
			t.Error("leaf chained to the wrong generation")
		}
	}

	newRoot, err := h.root.Rotate(ctx, nil, h.ks, "root-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := newRoot.Certificate().CheckSignatureFrom(newRoot.Certificate()); err != nil || newRoot.Purpose() != PurposeRoot {
		t.Errorf("rotated root is not a self-signed root: %v", err)
	}

	if _, err := h.root.Rotate(ctx, h.root, h.ks, "root-3"); err == nil {
		t.Error("root rotation with a parent accepted")
	}
	if _, err := h.op.Rotate(ctx, nil, h.ks, "operational-3"); err == nil {
		t.Error("intermediate rotation without parent accepted")
	}
	if _, err := h.op.Rotate(ctx, h.root, h.ks, "operational-2"); !errors.Is(err, ErrKeyExists) {
		t.Errorf("rotation onto an existing label: err = %v, want ErrKeyExists", err)
	}
}

func TestRandomSerial(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := randomSerial()
		if s.Sign() <= 0 || len(s.Bytes()) != serialLen || s.Bit(8*serialLen-1) != 0 {
			t.Fatalf("serial %x is not positive with 16-byte DER", s)
		}
		if seen[s.String()] {
			t.Fatal("duplicate serial")
		}
		seen[s.String()] = true
	}
}

func TestParsePurpose(t *testing.T) {
	for _, p := range purposes() {
		if got, err := ParsePurpose(string(p)); err != nil || got != p {
			t.Errorf("ParsePurpose(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParsePurpose("Root"); err == nil {
		t.Error("ParsePurpose accepted a wrong-case name")
	}
}
