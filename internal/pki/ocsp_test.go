package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// mapStatus is a StatusSource backed by a map from serial to status.
type mapStatus struct {
	t      *testing.T
	issuer *x509.Certificate
	status map[string]CertStatus
	err    error
}

func (m *mapStatus) CertStatus(_ context.Context, issuer *x509.Certificate, serial *big.Int) (CertStatus, error) {
	if !issuer.Equal(m.issuer) {
		m.t.Errorf("status asked of issuer %q", issuer.Subject)
	}
	if m.err != nil {
		return CertStatus{}, m.err
	}
	return m.status[serial.String()], nil // missing: zero value, StatusUnknown
}

type ocspFixture struct {
	h                      *hierarchy
	good, revoked, unknown *x509.Certificate
	foreign, foreignCA     *x509.Certificate
	src                    *mapStatus
	srv                    *httptest.Server
	revokedAt              time.Time
}

func newOCSPFixture(t *testing.T) *ocspFixture {
	t.Helper()
	f := &ocspFixture{h: newHierarchy(t)}
	f.good, _ = issue(t, f.h.op, OperationalProfile{DeviceID: "good"})
	f.revoked, _ = issue(t, f.h.op, OperationalProfile{DeviceID: "revoked"})
	f.unknown, _ = issue(t, f.h.op, OperationalProfile{DeviceID: "never-recorded"})
	other := newHierarchy(t)
	f.foreignCA = other.op.Certificate()
	f.foreign, _ = issue(t, other.op, OperationalProfile{DeviceID: "foreign"})
	f.revokedAt = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	f.src = &mapStatus{t: t, issuer: f.h.op.Certificate(), status: map[string]CertStatus{
		f.good.SerialNumber.String():    {Status: StatusGood},
		f.revoked.SerialNumber.String(): {Status: StatusRevoked, RevokedAt: f.revokedAt, Reason: ocsp.KeyCompromise},
	}}
	responder := NewOCSPResponder(f.src, func() []*CA { return []*CA{f.h.op, f.h.mfg} },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.srv = httptest.NewServer(responder)
	t.Cleanup(f.srv.Close)
	return f
}

func TestOCSPResponderWithOpenSSL(t *testing.T) {
	f := newOCSPFixture(t)
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.pem", f.h.root.CertificatePEM())
	opFile := writeFile(t, dir, "op.pem", f.h.op.CertificatePEM())

	tests := []struct {
		name     string
		cert     *x509.Certificate
		issuer   string
		wantFail bool
		want     []string
	}{
		{"good", f.good, opFile, false, []string{": good", "Response verify OK"}},
		{"revoked", f.revoked, opFile, false, []string{": revoked", "Reason: keyCompromise", "Response verify OK"}},
		{"unknown", f.unknown, opFile, false, []string{": unknown", "Response verify OK"}},
		{"unknown issuer", f.foreign, writeFile(t, dir, "foreign-ca.pem", certPEM(f.foreignCA)), true, []string{"Responder Error: unauthorized"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leafFile := writeFile(t, dir, tt.name+".pem", certPEM(tt.cert))
			out := openssl(t, tt.wantFail, "ocsp", "-issuer", tt.issuer, "-cert", leafFile, "-url", f.srv.URL,
				"-CAfile", rootFile, "-no_nonce")
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("openssl output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestOCSPResponderHTTP(t *testing.T) {
	f := newOCSPFixture(t)
	issuer := f.h.op.Certificate()

	request := func(cert *x509.Certificate, issuer *x509.Certificate) []byte {
		der, err := ocsp.CreateRequest(cert, issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	get := func(der []byte) *http.Response {
		resp, err := http.Get(f.srv.URL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	post := func(der []byte, contentType string) *http.Response {
		resp, err := http.Post(f.srv.URL, contentType, bytes.NewReader(der))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	body := func(resp *http.Response) []byte {
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return b
	}

	t.Run("GET good with cache headers", func(t *testing.T) {
		resp := get(request(f.good, issuer))
		parsed, err := ocsp.ParseResponseForCert(body(resp), f.good, issuer) // also checks the signature
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Status != ocsp.Good || parsed.NextUpdate.Sub(parsed.ThisUpdate) != time.Hour {
			t.Errorf("status %d, thisUpdate %s, nextUpdate %s", parsed.Status, parsed.ThisUpdate, parsed.NextUpdate)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=3600") {
			t.Errorf("Cache-Control %q", cc)
		}
		if resp.Header.Get("Expires") == "" || resp.Header.Get("Last-Modified") == "" {
			t.Error("missing Expires or Last-Modified")
		}
	})
	t.Run("POST revoked", func(t *testing.T) {
		resp := post(request(f.revoked, issuer), "application/ocsp-request")
		parsed, err := ocsp.ParseResponseForCert(body(resp), f.revoked, issuer)
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Status != ocsp.Revoked || !parsed.RevokedAt.Equal(f.revokedAt) || parsed.RevocationReason != ocsp.KeyCompromise {
			t.Errorf("status %d revokedAt %s reason %d", parsed.Status, parsed.RevokedAt, parsed.RevocationReason)
		}
		if resp.Header.Get("Cache-Control") != "" {
			t.Error("POST response carries cache headers")
		}
	})
	t.Run("SHA-256 CertID", func(t *testing.T) {
		der, err := ocsp.CreateRequest(f.good, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		if parsed, err := ocsp.ParseResponseForCert(body(post(der, "application/ocsp-request")), f.good, issuer); err != nil || parsed.Status != ocsp.Good {
			t.Errorf("status %v, %v", parsed, err)
		}
	})

	errorCases := []struct {
		name string
		resp func() *http.Response
		want ocsp.ResponseStatus
	}{
		{"unknown issuer", func() *http.Response { return get(request(f.foreign, f.foreignCA)) }, ocsp.Unauthorized},
		{"malformed GET", func() *http.Response {
			r, err := http.Get(f.srv.URL + "/" + base64.StdEncoding.EncodeToString([]byte("garbage")))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, ocsp.Malformed},
		{"bad base64", func() *http.Response {
			r, err := http.Get(f.srv.URL + "/%21%21%21")
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, ocsp.Malformed},
		{"malformed POST", func() *http.Response { return post([]byte{0x30, 0x00}, "application/ocsp-request") }, ocsp.Malformed},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ocsp.ParseResponse(body(tt.resp()), nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != tt.want {
				t.Errorf("err = %v, want OCSP %s", err, tt.want)
			}
		})
	}

	t.Run("status source failure", func(t *testing.T) {
		f.src.err = errors.New("database down")
		defer func() { f.src.err = nil }()
		_, err := ocsp.ParseResponse(body(post(request(f.good, issuer), "application/ocsp-request")), nil)
		var re ocsp.ResponseError
		if !errors.As(err, &re) || re.Status != ocsp.TryLater {
			t.Errorf("err = %v, want tryLater", err)
		}
	})

	t.Run("HTTP refusals", func(t *testing.T) {
		r := post(request(f.good, issuer), "text/plain")
		r.Body.Close()
		if r.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("wrong content type: HTTP %d", r.StatusCode)
		}
		// Through a recorder: over a real connection the server lingers
		// 500ms before closing a connection with an unread body.
		rec := httptest.NewRecorder()
		oversized := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, maxOCSPRequestSize+1)))
		oversized.Header.Set("Content-Type", "application/ocsp-request")
		f.srv.Config.Handler.ServeHTTP(rec, oversized)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: HTTP %d", rec.Code)
		}
		req, _ := http.NewRequest(http.MethodPut, f.srv.URL, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, POST" {
			t.Errorf("PUT: HTTP %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
		}
	})
}

// TestOCSPResponderPicksRotatedCA checks that both generations of a
// rotated CA are answered for, each signing for its own certificates.
func TestOCSPResponderPicksRotatedCA(t *testing.T) {
	h := newHierarchy(t)
	next, err := h.op.Rotate(context.Background(), h.root, h.ks, "operational-2")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := issue(t, next, OperationalProfile{DeviceID: "d"})
	src := &mapStatus{t: t, issuer: next.Certificate(), status: map[string]CertStatus{leaf.SerialNumber.String(): {Status: StatusGood}}}
	srv := httptest.NewServer(NewOCSPResponder(src, func() []*CA { return []*CA{h.op, next} }, nil))
	defer srv.Close()
	der, _ := ocsp.CreateRequest(leaf, next.Certificate(), nil)
	resp, err := http.Post(srv.URL, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	parsed, err := ocsp.ParseResponseForCert(b, leaf, next.Certificate())
	if err != nil || parsed.Status != ocsp.Good {
		t.Fatalf("%v, %v", parsed, err)
	}
	if err := parsed.CheckSignatureFrom(h.op.Certificate()); err == nil {
		t.Error("response verifies with the old generation's key")
	}
}
