package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

type staticTrust struct {
	anchors Anchors
	err     error
}

func (s staticTrust) Anchors(context.Context) (Anchors, error) { return s.anchors, s.err }

// revocations is a RevocationChecker over a set of serials.
type revocations struct {
	revoked map[string]bool
	err     error
	checked []*big.Int
}

func (r *revocations) IsRevoked(_ context.Context, _ *x509.Certificate, serial *big.Int) (bool, error) {
	r.checked = append(r.checked, serial)
	return r.revoked[serial.String()], r.err
}

// newExternalCA makes a maker's self-signed CA, outside Muster's naming.
func newExternalCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newP256(t)
	ski, _ := subjectKeyID(key.Public())
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: name, Organization: []string{"Acme Chips"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, signer: key}
}

// externalLeaf is a birth certificate in a maker's own format.
func externalLeaf(t testing.TB, ca *CA, serial string) *x509.Certificate {
	return signRaw(t, ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: serial, SerialNumber: serial},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, newP256(t).Public())
}

func templateOf(t testing.TB, p Profile) *x509.Certificate {
	t.Helper()
	tmpl, err := p.Template(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestVerifier(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)
	other := newHierarchy(t)
	ext := newExternalCA(t, "Acme Root")
	extInter := &CA{signer: newP256(t)}
	extInter.cert = signRaw(t, ext, &x509.Certificate{
		Subject: pkix.Name{CommonName: "Acme Line 3"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, MaxPathLenZero: true,
	}, extInter.signer.Public())

	birth, _ := issue(t, h.mfg, BirthProfile{Factory: "f1", Serial: "s1", Model: "m"})
	operational, _ := issue(t, h.op, OperationalProfile{DeviceID: "dev-1"})
	external := externalLeaf(t, ext, "ACME-77")
	externalViaInter := externalLeaf(t, extInter, "ACME-78")
	pub := newP256(t).Public()

	revoked, _ := issue(t, h.op, OperationalProfile{DeviceID: "revoked"})
	rev := &revocations{revoked: map[string]bool{revoked.SerialNumber.String(): true}}
	anchors := Anchors{
		Manufacturing:         []*x509.Certificate{h.mfg.Certificate()},
		ExternalManufacturers: []*x509.Certificate{ext.Certificate()},
		Operational:           []*x509.Certificate{h.op.Certificate()},
	}
	v, err := NewVerifier(staticTrust{anchors: anchors}, rev)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("accepted", func(t *testing.T) {
		tests := []struct {
			name  string
			chain []*x509.Certificate
			check func(Identity) bool
		}{
			{"birth", []*x509.Certificate{birth}, func(id Identity) bool {
				return id.Kind == IdentityBirth && id.Factory == "f1" && id.Serial == "s1" && !id.External && len(id.Chain) == 2
			}},
			{"birth with presented chain", []*x509.Certificate{birth, h.mfg.Certificate(), h.root.Certificate()}, func(id Identity) bool {
				return id.Kind == IdentityBirth
			}},
			{"operational", []*x509.Certificate{operational}, func(id Identity) bool {
				return id.Kind == IdentityOperational && id.DeviceID == "dev-1" && id.Chain[1].Equal(h.op.Certificate())
			}},
			{"external", []*x509.Certificate{external}, func(id Identity) bool {
				return id.Kind == IdentityBirth && id.External && id.Serial == "ACME-77" && id.Factory == "" && id.Chain[1].Equal(ext.Certificate())
			}},
			{"external with presented intermediate", []*x509.Certificate{externalViaInter, extInter.Certificate()}, func(id Identity) bool {
				return id.External && len(id.Chain) == 3
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id, err := v.Verify(ctx, tt.chain, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if !tt.check(id) || !id.Certificate.Equal(tt.chain[0]) {
					t.Errorf("identity %+v", id)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		birthUnderOp := signRaw(t, h.op, templateOf(t, BirthProfile{Factory: "f1", Serial: "s9"}), pub)
		opUnderMfg := signRaw(t, h.mfg, templateOf(t, OperationalProfile{DeviceID: "dev-9"}), pub)
		birthUnderExt := signRaw(t, ext, templateOf(t, BirthProfile{Factory: "f1", Serial: "s9"}), pub)
		serverAuthOnly := templateOf(t, OperationalProfile{DeviceID: "dev-9"})
		serverAuthOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		foreignOp, _ := issue(t, other.op, OperationalProfile{DeviceID: "dev-1"})
		serverCert, _ := issue(t, h.server, ServerProfile{DNSNames: []string{"muster.test"}})
		bothPolicies := templateOf(t, OperationalProfile{DeviceID: "dev-9"})
		bothPolicies.Policies = append(bothPolicies.Policies, templateOf(t, BirthProfile{Factory: "f", Serial: "s"}).Policies...)

		tests := []struct {
			name  string
			chain []*x509.Certificate
			now   time.Time
			want  error
		}{
			{"birth policy under the operational CA", []*x509.Certificate{birthUnderOp}, time.Now(), ErrUntrusted},
			{"birth policy under the operational CA, with chain", []*x509.Certificate{birthUnderOp, h.op.Certificate(), h.root.Certificate()}, time.Now(), ErrUntrusted},
			{"operational policy under a manufacturing CA", []*x509.Certificate{opUnderMfg}, time.Now(), ErrUntrusted},
			{"Muster birth policy from an external CA", []*x509.Certificate{birthUnderExt}, time.Now(), ErrUntrusted},
			{"serverAuth-only device certificate", []*x509.Certificate{signRaw(t, h.op, serverAuthOnly, pub)}, time.Now(), ErrUntrusted},
			{"another Muster installation", []*x509.Certificate{foreignOp, other.op.Certificate()}, time.Now(), ErrUntrusted},
			{"server certificate as client", []*x509.Certificate{serverCert, h.server.Certificate()}, time.Now(), ErrUntrusted},
			{"both policies", []*x509.Certificate{signRaw(t, h.op, bothPolicies, pub)}, time.Now(), ErrUntrusted},
			{"revoked", []*x509.Certificate{revoked}, time.Now(), ErrRevoked},
			{"expired", []*x509.Certificate{operational}, operational.NotAfter.Add(time.Hour), ErrExpired},
			{"not yet valid", []*x509.Certificate{operational}, operational.NotBefore.Add(-time.Hour), ErrExpired},
			{"no certificate", nil, time.Now(), ErrUntrusted},
			{"too many certificates", []*x509.Certificate{birth, birth, birth, birth, birth, birth, birth, birth, birth}, time.Now(), ErrUntrusted},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id, err := v.Verify(ctx, tt.chain, tt.now)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.want)
				}
				t.Log(err)
			})
		}
	})

	t.Run("revoked intermediate", func(t *testing.T) {
		r := &revocations{revoked: map[string]bool{extInter.Certificate().SerialNumber.String(): true}}
		v, _ := NewVerifier(staticTrust{anchors: anchors}, r)
		if _, err := v.Verify(ctx, []*x509.Certificate{externalViaInter, extInter.Certificate()}, time.Now()); !errors.Is(err, ErrRevoked) {
			t.Errorf("err = %v, want ErrRevoked", err)
		}
		if len(r.checked) != 2 {
			t.Errorf("%d revocation checks, want leaf and intermediate", len(r.checked))
		}
	})

	t.Run("intermediates from the trust source", func(t *testing.T) {
		withInter := anchors
		withInter.Intermediates = []*x509.Certificate{extInter.Certificate()}
		v, _ := NewVerifier(staticTrust{anchors: withInter}, &revocations{})
		if _, err := v.Verify(ctx, []*x509.Certificate{externalViaInter}, time.Now()); err != nil {
			t.Errorf("leaf without presented intermediate: %v", err)
		}
		// Intermediates confer no trust: an operational CA listed only
		// there vouches for nothing.
		v, _ = NewVerifier(staticTrust{anchors: Anchors{Intermediates: []*x509.Certificate{h.op.Certificate(), h.root.Certificate()}}}, &revocations{})
		if _, err := v.Verify(ctx, []*x509.Certificate{operational}, time.Now()); !errors.Is(err, ErrUntrusted) {
			t.Errorf("err = %v, want ErrUntrusted", err)
		}
	})

	t.Run("fails closed", func(t *testing.T) {
		v, _ := NewVerifier(staticTrust{anchors: anchors}, &revocations{err: errors.New("store down")})
		if _, err := v.Verify(ctx, []*x509.Certificate{operational}, time.Now()); err == nil {
			t.Error("accepted while the revocation checker fails")
		}
		v, _ = NewVerifier(staticTrust{err: errors.New("store down")}, &revocations{})
		if _, err := v.Verify(ctx, []*x509.Certificate{operational}, time.Now()); err == nil {
			t.Error("accepted while the trust source fails")
		}
		v, _ = NewVerifier(staticTrust{}, &revocations{})
		if _, err := v.Verify(ctx, []*x509.Certificate{operational}, time.Now()); !errors.Is(err, ErrUntrusted) {
			t.Errorf("no anchors: err = %v, want ErrUntrusted", err)
		}
	})

	t.Run("rotation overlap", func(t *testing.T) {
		next, err := h.op.Rotate(ctx, h.root, h.ks, "operational-2")
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := issue(t, next, OperationalProfile{DeviceID: "dev-2"})
		both := anchors
		both.Operational = []*x509.Certificate{h.op.Certificate(), next.Certificate()}
		v, _ := NewVerifier(staticTrust{anchors: both}, &revocations{})
		for _, c := range []*x509.Certificate{operational, fresh} {
			if _, err := v.Verify(ctx, []*x509.Certificate{c}, time.Now()); err != nil {
				t.Errorf("%s: %v", c.Subject.CommonName, err)
			}
		}
	})

	if _, err := NewVerifier(nil, rev); err == nil {
		t.Error("NewVerifier without trust source")
	}
	if _, err := NewVerifier(staticTrust{}, nil); err == nil {
		t.Error("NewVerifier without revocation checker")
	}
}

// TestVerifyPeerCertificateTLS runs real TLS handshakes with the verifier
// plugged into crypto/tls.
func TestVerifyPeerCertificateTLS(t *testing.T) {
	ctx := context.Background()
	h := newHierarchy(t)
	serverCert, serverKey := issue(t, h.server, ServerProfile{DNSNames: []string{"muster.test"}})
	good, goodKey := issue(t, h.mfg, BirthProfile{Factory: "f1", Serial: "s1"})
	bad, badKey := issue(t, h.mfg, BirthProfile{Factory: "f1", Serial: "s2"})
	v, err := NewVerifier(
		staticTrust{anchors: Anchors{Manufacturing: []*x509.Certificate{h.mfg.Certificate()}}},
		&revocations{revoked: map[string]bool{bad.SerialNumber.String(): true}},
	)
	if err != nil {
		t.Fatal(err)
	}
	serverConfig := &tls.Config{
		Certificates:          []tls.Certificate{{Certificate: [][]byte{serverCert.Raw, h.server.Certificate().Raw}, PrivateKey: serverKey}},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: v.VerifyPeerCertificate(ctx),
	}

	handshake := func(clientCert tls.Certificate) (serverErr, clientErr error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer conn.Close()
			tc := tls.Server(conn, serverConfig)
			err = tc.Handshake()
			if err == nil {
				_, err = tc.Write([]byte("ok"))
			}
			done <- err
		}()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs:      poolOf([]*x509.Certificate{h.root.Certificate()}),
			ServerName:   "muster.test",
			Certificates: []tls.Certificate{clientCert},
		})
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2)
			_, err = io.ReadFull(conn, buf)
			conn.Close()
		}
		return <-done, err
	}

	chain := func(c *x509.Certificate) [][]byte { return [][]byte{c.Raw, h.mfg.Certificate().Raw} }
	if serr, cerr := handshake(tls.Certificate{Certificate: chain(good), PrivateKey: goodKey}); serr != nil || cerr != nil {
		t.Fatalf("good device refused: server %v, client %v", serr, cerr)
	}
	serr, cerr := handshake(tls.Certificate{Certificate: chain(bad), PrivateKey: badKey})
	if !errors.Is(serr, ErrRevoked) || cerr == nil {
		t.Errorf("revoked device: server %v, client %v; want ErrRevoked and a failed client", serr, cerr)
	}
	serr, _ = handshake(tls.Certificate{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey})
	if !errors.Is(serr, ErrUntrusted) {
		t.Errorf("server certificate as client: %v, want ErrUntrusted", serr)
	}
	serr, _ = handshake(tls.Certificate{})
	if serr == nil {
		t.Error("client without certificate accepted")
	}
}
