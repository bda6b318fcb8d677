package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// batchAnswer is a parsed batch answer: the results and the last line.
type batchAnswer struct {
	results []mfg.Result
	end     batchEnd
}

// submit posts a manifest as caller and parses the streamed answer.
func (h *harness) submit(caller, factory, query, contentType, manifest string) batchAnswer {
	h.t.Helper()
	w := h.do(request{caller: caller, method: "POST", path: "/v1/factories/" + factory + "/batches" + query, body: manifest,
		header: map[string]string{"Content-Type": contentType}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" {
		h.t.Fatalf("batch as %s: %d %s: %s", caller, w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var a batchAnswer
	sc := bufio.NewScanner(w.Body)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte(`"batch":`)) && !bytes.Contains(line, []byte(`"line":`)) {
			if err := json.Unmarshal(line, &a.end); err != nil {
				h.t.Fatal(err)
			}
			continue
		}
		var r mfg.Result
		if err := json.Unmarshal(line, &r); err != nil {
			h.t.Fatalf("result line %q: %v", line, err)
		}
		a.results = append(a.results, r)
	}
	if a.end.Summary == nil {
		h.t.Fatalf("batch answer without a summary: %+v", a.end)
	}
	return a
}

// acme registers factory acme through the API, with a manufacturer token.
func (h *harness) acme() {
	h.t.Helper()
	call[factoryView](h, request{caller: "admin", method: "POST", path: "/v1/factories",
		body: map[string]any{"name": "acme", "models": []string{"sensor-x", "sensor-y"}, "serialPattern": "SN-[0-9]{6}"}}, http.StatusCreated)
	created := call[tokenCreated](h, request{caller: "admin", method: "POST", path: "/v1/tokens",
		body: map[string]any{"name": "acme-line-1", "role": "manufacturer", "factory": "acme"}}, http.StatusCreated)
	h.tokens["acme"] = created.Secret
}

func manifest(t *testing.T, o mfg.GenerateOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := mfg.GenerateManifest(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// chainFiles exports the CA chains into a directory, as muster ca export does.
func (h *harness) chainFiles() string {
	h.t.Helper()
	dir := h.t.TempDir()
	for _, c := range call[list[chainFile]](h, request{caller: "auditor", method: "GET", path: "/v1/cas/chains"}, http.StatusOK).Items {
		if err := os.WriteFile(filepath.Join(dir, c.FileName), []byte(c.PEM), 0o600); err != nil {
			h.t.Fatal(err)
		}
	}
	return dir
}

func countRows(t *testing.T, h *harness, table string) int {
	t.Helper()
	var n int
	if err := h.st.DB().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchesEndToEnd registers a managed factory, creates its manufacturer
// token and submits 1,000 units in each key mode, then checks the
// certificates as a relying party would, and that a resubmission changes
// nothing.
func TestBatchesEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.acme()
	csrMode := manifest(t, mfg.GenerateOptions{Model: "sensor-x", HardwareRevision: "r3", Count: 1000, WithCSR: true})
	mintMode := manifest(t, mfg.GenerateOptions{Model: "sensor-y", Count: 1000, Start: 5001, Format: mfg.FormatJSONL})

	csr := h.submit("acme", "acme", "?batch=B-2026-47", "text/csv", csrMode)
	mint := h.submit("acme", "acme", "?keyMode=mint", "application/x-ndjson", mintMode)
	for name, a := range map[string]batchAnswer{"csr": csr, "mint": mint} {
		if s := a.end.Summary; len(a.results) != 1000 || s.OK != 1000 || s.Errors != 0 {
			t.Fatalf("%s mode: %d results, summary %+v", name, len(a.results), s)
		}
	}

	mfgCA, err := h.cas.IssuerFor(context.Background(), pki.PurposeManufacturing, "acme")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := h.cas.IssuerFor(context.Background(), pki.PurposeRoot, "")
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inter.AddCert(mfgCA.Cert)
	for i, r := range append(csr.results, mint.results...) {
		block, rest := pem.Decode([]byte(r.CertificatePEM))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if issuer, _ := pem.Decode(rest); issuer == nil || !bytes.Equal(issuer.Bytes, mfgCA.Cert.Raw) {
			t.Fatalf("line %d: the certificate does not come with its CA", r.Line)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("line %d: does not chain to the root: %v", r.Line, err)
		}
		id, err := pki.IdentityOf(cert)
		wantModel := "sensor-x"
		if i >= 1000 {
			wantModel = "sensor-y"
		}
		if err != nil || id.Kind != pki.IdentityBirth || id.Factory != "acme" || id.Serial != r.Serial || id.Model != wantModel ||
			cert.Policies[0].String() != pki.BirthPolicyOID || cert.URIs[0].String() != "urn:muster:device:acme:"+r.Serial {
			t.Fatalf("line %d: identity %+v, %v", r.Line, id, err)
		}
		if i >= 1000 {
			kb, _ := pem.Decode([]byte(r.KeyPEM))
			key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
			if err != nil || !key.(crypto.Signer).Public().(*ecdsa.PublicKey).Equal(cert.PublicKey) {
				t.Fatalf("line %d: the minted key does not match the certificate: %v", r.Line, err)
			}
		} else if id.HardwareRevision != "r3" {
			t.Fatalf("line %d: hardware revision %q", r.Line, id.HardwareRevision)
		}
	}

	// openssl agrees, against the chains Muster exports.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("the openssl binary is needed")
	}
	dir := h.chainFiles()
	for _, r := range []mfg.Result{csr.results[0], mint.results[999]} {
		crt := filepath.Join(dir, r.Serial+".crt")
		if err := os.WriteFile(crt, []byte(r.CertificatePEM), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "root.pem"),
			"-untrusted", filepath.Join(dir, "manufacturing-acme-chain.pem"), crt).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Fatalf("openssl verify %s: %v\n%s", r.Serial, err, out)
		}
	}

	d := call[deviceAnswer](h, request{caller: "acme", method: "GET", path: "/v1/devices/" + csr.results[7].DeviceID}, http.StatusOK)
	if d.Identity.Batch != "B-2026-47" || d.Lifecycle.State != "manufactured" {
		t.Errorf("device = %+v", d)
	}
	events := call[list[map[string]any]](h, request{caller: "acme", method: "GET", path: "/v1/devices/" + d.ID + "/history"}, http.StatusOK)
	if len(events.Items) != 1 || events.Items[0]["type"] != "device.created" || events.Items[0]["actor"] != "manufacturer/acme-line-1" {
		t.Errorf("history = %+v", events.Items)
	}
	b := call[store.Batch](h, request{caller: "acme", method: "GET", path: "/v1/factories/acme/batches/B-2026-47"}, http.StatusOK)
	if b.Status != store.BatchDone || b.OK != 1000 || b.KeyMode != "csr" {
		t.Errorf("batch record = %+v", b)
	}

	// Resubmitting: every serial exists, same device and certificate,
	// nothing new is issued.
	certs := countRows(t, h, "certificates")
	again := h.submit("acme", "acme", "?batch=B-2026-47", "text/csv", csrMode)
	if again.end.Summary.Existing != 1000 {
		t.Fatalf("resubmission summary %+v", again.end.Summary)
	}
	for i, r := range again.results {
		if r.Status != mfg.StatusExists || r.DeviceID != csr.results[i].DeviceID || r.CertificatePEM != csr.results[i].CertificatePEM {
			t.Fatalf("line %d resubmitted: %+v", r.Line, r)
		}
	}
	if n := countRows(t, h, "certificates"); n != certs {
		t.Errorf("resubmission added %d certificates", n-certs)
	}
}

// deviceAnswer is the part of a device answer these tests read.
type deviceAnswer struct {
	ID       string `json:"id"`
	Identity struct {
		Batch string `json:"batch"`
	} `json:"identity"`
	Lifecycle struct {
		State string `json:"state"`
	} `json:"lifecycle"`
}

// csrWith returns the PEM CSR of key, with extra requested extensions.
func csrWith(t *testing.T, key crypto.Signer, exts ...pkix.Extension) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d"}, ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBatchBadRows mixes every kind of bad row into a manifest: each gets
// its reason and nothing is issued for it, while the good rows succeed.
func TestBatchBadRows(t *testing.T) {
	h := newHarness(t)
	h.acme()
	mustDER := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badSig := []byte(csrWith(t, p256(t)))
	block, _ := pem.Decode(badSig)
	block.Bytes[len(block.Bytes)-3] ^= 0xff
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	shared := p256(t)
	caTrue := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: mustDER(struct{ IsCA bool }{true})}
	serverAuth := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustDER([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})}
	rows := []struct {
		line       string
		code, text string // want; "" code for ok
	}{
		{line: row(t, "SN-000001", "sensor-x", csrWith(t, p256(t)))},
		{line: row(t, "SN-000002", "sensor-x", string(pem.EncodeToMemory(block))), code: mfg.CodeCSRInvalid, text: "bad_signature"},
		{line: row(t, "SN-000003", "sensor-x", csrWith(t, rsa1024)), code: mfg.CodeCSRInvalid, text: "weak_key"},
		{line: row(t, "SN-000004", "sensor-x", csrWith(t, p256(t), caTrue)), code: mfg.CodeCSRInvalid, text: "ca_requested"},
		{line: row(t, "SN-000005", "sensor-x", csrWith(t, p256(t), serverAuth)), code: mfg.CodeCSRInvalid, text: "extra_eku"},
		{line: row(t, "SN-000006", "sensor-x", csrWith(t, shared))},
		{line: row(t, "SN-000007", "sensor-x", csrWith(t, shared)), code: mfg.CodeKeyReused, text: "line 6"},
		{line: row(t, "XX-000008", "sensor-x", csrWith(t, p256(t))), code: mfg.CodeScope, text: "serial pattern"},
		{line: row(t, "SN-000009", "toaster", csrWith(t, p256(t))), code: mfg.CodeScope, text: "not registered for factory acme"},
		{line: `{"serial":"SN-000010","model":"sensor-x","csr":`, code: mfg.CodeParse, text: "JSON"},
		{line: row(t, "SN-000011", "sensor-x", ""), code: mfg.CodeCSRMissing},
		{line: row(t, "SN-000012", "sensor-x", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), code: mfg.CodeCSRInvalid, text: "never send a private key"},
		{line: row(t, "SN-000013", "sensor-x", csrWith(t, p256(t)))},
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.line + "\n")
	}
	before := countRows(t, h, "certificates")
	a := h.submit("acme", "acme", "", "application/x-ndjson", b.String())
	for i, want := range rows {
		got := a.results[i]
		switch {
		case want.code == "" && got.Status != mfg.StatusOK:
			t.Errorf("line %d: %s %s: %s, want ok", got.Line, got.Status, got.Code, got.Message)
		case want.code != "" && (got.Status != mfg.StatusError || got.Code != want.code || !strings.Contains(got.Message, want.text) || got.CertificatePEM != ""):
			t.Errorf("line %d: %s %s: %q, want %s mentioning %q", got.Line, got.Status, got.Code, got.Message, want.code, want.text)
		}
	}
	if s := a.end.Summary; s.OK != 3 || s.Errors != 10 {
		t.Errorf("summary %+v", s)
	}
	if n := countRows(t, h, "certificates") - before; n != 3 {
		t.Errorf("%d certificates issued, want 3", n)
	}
	// A key certified in an earlier batch is refused too.
	a = h.submit("acme", "acme", "", "application/x-ndjson", row(t, "SN-000020", "sensor-x", csrWith(t, shared))+"\n")
	if r := a.results[0]; r.Code != mfg.CodeKeyReused {
		t.Errorf("key of an earlier batch: %+v", r)
	}

	// A CSV whose header names an unknown column is refused whole.
	w := h.do(request{caller: "acme", method: "POST", path: "/v1/factories/acme/batches", body: "serial,model,colour\n",
		header: map[string]string{"Content-Type": "text/csv"}})
	if e := errorOf(t, w); w.Code != http.StatusBadRequest || e.Code != codeValidationFailed || !strings.Contains(e.Message, "colour") {
		t.Errorf("unknown CSV column: %d %s", w.Code, w.Body)
	}
	w = h.do(request{caller: "acme", method: "POST", path: "/v1/factories/acme/batches", body: "x", header: map[string]string{"Content-Type": "text/plain"}})
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain manifest: %d %s", w.Code, w.Body)
	}
	w = h.do(request{caller: "acme", method: "POST", path: "/v1/factories/acme/batches?keyMode=register", body: "", header: map[string]string{"Content-Type": "text/csv"}})
	if e := errorOf(t, w); w.Code != http.StatusBadRequest || e.Field != "keyMode" {
		t.Errorf("key mode register for a managed factory: %d %s", w.Code, w.Body)
	}
}

func row(t *testing.T, serial, model, csr string) string {
	t.Helper()
	b, err := json.Marshal(mfg.Row{Serial: serial, Model: model, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManufacturerScope: a manufacturer registers only its own factory's
// models and serials, submits only to its own factory and sees no other.
func TestManufacturerScope(t *testing.T) {
	h := newHarness(t)
	h.acme()
	theirs := h.submit("manufacturer", factory1, "?keyMode=mint", "application/x-ndjson", `{"serial":"SN-1","model":"gw-100"}`+"\n")
	before := h.snapshot("")
	for _, c := range []struct {
		name string
		rq   request
		code int
		want string
	}{
		{"submit to another factory", request{caller: "acme", method: "POST", path: "/v1/factories/" + factory1 + "/batches?format=jsonl", body: `{"serial":"SN-000001","model":"sensor-x"}`}, 403, "factory"},
		{"read another factory", request{caller: "acme", method: "GET", path: "/v1/factories/" + factory1}, 404, ""},
		{"read another factory's device", request{caller: "acme", method: "GET", path: "/v1/devices/" + theirs.results[0].DeviceID}, 404, ""},
		{"model not allowed", request{caller: "acme", method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"serial": "SN-000001", "model": "toaster"}}}, 403, "identity.model"},
		{"serial outside the pattern", request{caller: "acme", method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"serial": "SN-1", "model": "sensor-x"}}}, 403, "identity.serial"},
		{"token for an unregistered factory", request{caller: "admin", method: "POST", path: "/v1/tokens", body: map[string]any{"name": "x", "role": "manufacturer", "factory": "nowhere"}}, 400, "factory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := h.with(t).do(c.rq)
			if e := errorOf(t, w); w.Code != c.code || e.Field != c.want {
				t.Fatalf("%d %s, want %d with field %q", w.Code, w.Body, c.code, c.want)
			}
			h.with(t).assertUnchanged(t, before, "")
		})
	}
	listed := call[list[factoryView]](h, request{caller: "acme", method: "GET", path: "/v1/factories"}, http.StatusOK)
	if len(listed.Items) != 1 || listed.Items[0].Name != "acme" || len(listed.Items[0].CAs) != 1 {
		t.Errorf("factories a manufacturer sees: %+v", listed.Items)
	}
	// In scope, a single device is registered as before.
	call[deviceAnswer](h, request{caller: "acme", method: "POST", path: "/v1/devices",
		body: map[string]any{"identity": map[string]any{"serial": "SN-123456", "model": "sensor-y"}}}, http.StatusCreated)
}

// TestExternalFactory registers a maker's CA made with openssl after proof
// of possession, refusing a wrong, a used and an expired nonce, then a
// batch of the birth certificates the maker issued.
func TestExternalFactory(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	ossl := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "maker.key", "-out", "maker.pem",
		"-days", "3650", "-subj", "/O=Maker/CN=Maker IDevID CA", "-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,digitalSignature")
	sign := func(name, subj, ext string) string {
		t.Helper()
		ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name+".key", "-subj", subj, "-out", name+".csr")
		args := []string{"x509", "-req", "-in", name + ".csr", "-CA", "maker.pem", "-CAkey", "maker.key", "-days", "30", "-out", name + ".pem"}
		if ext != "" {
			if err := os.WriteFile(filepath.Join(dir, name+".ext"), []byte(ext), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-extfile", name+".ext")
		}
		ossl(args...)
		return read(name + ".pem")
	}
	register := func(name, nonce, verif string) *httpAnswer {
		return h.answer(request{caller: "operator", method: "POST", path: "/v1/factories", body: map[string]any{
			"name": name, "models": []string{"m1"}, "serialPattern": "MK-[0-9]+",
			"caCert": read("maker.pem"), "verificationCert": verif, "nonce": nonce}})
	}
	challenge := func(name, expires string) store.Challenge {
		return call[store.Challenge](h, request{caller: "operator", method: "POST", path: "/v1/factories/" + name + "/challenge",
			body: map[string]any{"expiresIn": expires}}, http.StatusCreated)
	}

	c := challenge("maker", "")
	if a := register("maker", c.Nonce, sign("wrong", "/CN="+strings.Repeat("0", 64), "")); a.code != 400 || a.err.Field != "verificationCert" {
		t.Fatalf("verification certificate for another nonce: %+v", a)
	}
	if a := register("maker", c.Nonce, sign("verif", "/CN="+c.Nonce, "")); a.code != 201 {
		t.Fatalf("registration: %+v", a)
	}
	if a := register("maker", c.Nonce, read("verif.pem")); a.code != 409 {
		t.Fatalf("second registration: %+v", a)
	}
	used := challenge("maker2", "")
	register("maker2", used.Nonce, sign("verif2", "/CN="+used.Nonce, ""))
	if a := register("maker3", used.Nonce, read("verif2.pem")); a.code != 400 || a.err.Field != "nonce" || !strings.Contains(a.err.Message, "issued for factory") {
		t.Fatalf("nonce of another registration: %+v", a)
	}
	expired := challenge("maker4", "1m")
	h.exec("UPDATE ca_challenges SET expires_at = ? WHERE nonce = ?", time.Now().Add(-time.Second).UTC(), expired.Nonce)
	if a := register("maker4", expired.Nonce, sign("verif4", "/CN="+expired.Nonce, "")); a.code != 400 || a.err.Field != "nonce" || !strings.Contains(a.err.Message, "expired") {
		t.Fatalf("expired nonce: %+v", a)
	}

	// The maker's birth certificates are registered as they are.
	ext := "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
	var b strings.Builder
	for i := 1; i <= 3; i++ {
		serial := fmt.Sprintf("MK-%d", i)
		fmt.Fprintf(&b, "%s\n", mustMarshal(t, mfg.Row{Serial: serial, Model: "m1", Certificate: sign(serial, "/serialNumber="+serial+"/CN="+serial, ext)}))
	}
	fmt.Fprintf(&b, "%s\n", mustMarshal(t, mfg.Row{Serial: "MK-9", Model: "m1", Certificate: sign("MK-8", "/CN=MK-8", ext)}))
	a := h.submit("admin", "maker", "", "application/x-ndjson", b.String())
	if s := a.end.Summary; s.OK != 3 || s.Errors != 1 || a.results[3].Code != mfg.CodeCertInvalid {
		t.Fatalf("external batch: %+v %+v", s, a.results[3])
	}
	got, _ := pem.Decode([]byte(a.results[0].CertificatePEM))
	want, _ := pem.Decode([]byte(read("MK-1.pem")))
	if got == nil || !bytes.Equal(got.Bytes, want.Bytes) {
		t.Fatalf("registered certificate is not the maker's: %q", a.results[0].CertificatePEM)
	}
	v := call[factoryView](h, request{caller: "auditor", method: "GET", path: "/v1/factories/maker"}, http.StatusOK)
	if v.CAMode != "external" || len(v.CAs) != 1 || v.CAs[0].Purpose != "external" || v.CAs[0].KeyLabel != "" {
		t.Fatalf("external factory = %+v", v)
	}
}

// httpAnswer is a status and, for failures, the error.
type httpAnswer struct {
	code int
	err  apiError
	body string
}

func (h *harness) answer(rq request) *httpAnswer {
	h.t.Helper()
	w := h.do(rq)
	a := &httpAnswer{code: w.Code, body: w.Body.String()}
	if w.Code >= 400 {
		a.err = errorOf(h.t, w)
	}
	return a
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRotateManufacturingCA rotates a factory's CA: during the overlap both
// generations verify, and the next batch is signed by the new CA.
func TestRotateManufacturingCA(t *testing.T) {
	h := newHarness(t)
	h.acme()
	old := h.submit("acme", "acme", "?keyMode=mint", "application/x-ndjson", `{"serial":"SN-000001","model":"sensor-x"}`+"\n")
	rotated := call[store.CA](h, request{caller: "admin", method: "POST", path: "/v1/cas/rotate",
		body: map[string]any{"purpose": "manufacturing", "factory": "acme", "overlap": "720h"}}, http.StatusCreated)
	if w := h.do(request{caller: "operator", method: "POST", path: "/v1/cas/rotate", body: map[string]any{"purpose": "operational"}}); w.Code != http.StatusForbidden {
		t.Errorf("operator rotation: %d", w.Code)
	}
	fresh := h.submit("acme", "acme", "?keyMode=mint", "application/x-ndjson", `{"serial":"SN-000002","model":"sensor-x"}`+"\n")
	v, err := pki.NewVerifier(h.cas, never{})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]batchAnswer{"old": old, "new": fresh} {
		block, _ := pem.Decode([]byte(a.results[0].CertificatePEM))
		cert, _ := x509.ParseCertificate(block.Bytes)
		if _, err := v.Verify(context.Background(), []*x509.Certificate{cert}, time.Now()); err != nil {
			t.Errorf("%s generation during the overlap: %v", name, err)
		}
		if name == "new" && fmt.Sprintf("%x", cert.AuthorityKeyId) != rotated.SubjectKeyID {
			t.Errorf("the batch after the rotation was not signed by the new CA")
		}
	}
	cas := call[list[store.CA]](h, request{caller: "auditor", method: "GET", path: "/v1/cas?purpose=manufacturing&factory=acme"}, http.StatusOK)
	if len(cas.Items) != 2 || cas.Items[0].Status != store.CARetiring || cas.Items[1].Status != store.CAActive {
		t.Fatalf("acme's CAs = %+v", cas.Items)
	}
	chains := call[list[chainFile]](h, request{caller: "auditor", method: "GET", path: "/v1/cas/chains"}, http.StatusOK)
	for _, c := range chains.Items {
		if c.FileName == "manufacturing-acme-chain.pem" && strings.Count(c.PEM, "BEGIN CERTIFICATE") != 3 {
			t.Errorf("acme's chain during the overlap holds %d certificates, want both CAs and the root", strings.Count(c.PEM, "BEGIN CERTIFICATE"))
		}
	}
}

// never is a revocation checker for which nothing is revoked.
type never struct{}

func (never) IsRevoked(context.Context, *x509.Certificate, *big.Int) (bool, error) { return false, nil }
