package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
)

// TestCLIManufacturingLine walks the README's manufacturing section through
// the CLI: factory, manufacturer token, generated manifests in both key
// modes, submission, the files on disk, the exported chains and openssl.
func TestCLIManufacturingLine(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	work := t.TempDir()
	at := func(name string) string { return filepath.Join(work, name) }

	f := cliJSON[client.Factory](t, dir, "factories", "add", "acme", "--models", "sensor-x,sensor-y", "--serial-pattern", "SN-[0-9]{6}")
	if f.CAMode != client.CAManaged || len(f.CAs) != 1 {
		t.Fatalf("factories add: %+v", f)
	}
	created := cliJSON[client.CreatedToken](t, dir, "tokens", "create", "--role", "manufacturer", "--factory", "acme", "--name", "line-1")
	mfgTok := []string{"--token", created.Secret}

	cli(t, dir, append(mfgTok, "mfg", "manifest", "generate", "--factory", "acme", "--model", "sensor-x", "--count", "40",
		"--with-csr", "--csr-dir", at("device-keys"), "--out", at("csr.csv"))...)
	cli(t, dir, append(mfgTok, "mfg", "manifest", "generate", "--model", "sensor-y", "--count", "30", "--start", "1001", "--out", at("mint.jsonl"))...)
	if _, stderr, code := runCLI(t, "--data-dir", dir, "mfg", "manifest", "generate", "--factory", "acme", "--model", "toaster", "--count", "1"); code == 0 || !strings.Contains(stderr, "toaster") {
		t.Fatalf("generate for a model the factory does not make: exit %d, %s", code, stderr)
	}

	stdout, stderr, code := runCLI(t, append([]string{"--data-dir", dir}, append(mfgTok, "mfg", "batch", "submit", "--factory", "acme",
		at("csr.csv"), "--out", at("csr-out"), "--batch", "B-47", "-o", "json")...)...)
	if code != 0 {
		t.Fatalf("batch submit: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var report client.BatchReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || report.Batch != "B-47" || report.Summary.OK != 40 {
		t.Fatalf("batch report %s (%v)", stdout, err)
	}
	if !strings.Contains(stderr, "40/40 rows") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	cert := readCert(t, at("csr-out/SN-000007.crt"))
	keyPEM, err := os.ReadFile(at("device-keys/SN-000007.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil || !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Fatalf("the device's key does not match its birth certificate: %v", err)
	}
	report2 := cli(t, dir, append(mfgTok, "mfg", "batch", "submit", "--factory", "acme", "--key-mode", "mint", at("mint.jsonl"), "--out", at("mint-out"))...)
	if !regexp.MustCompile(`Registered +30\n`).MatchString(report2) {
		t.Fatalf("mint batch: %s", report2)
	}
	if fi, err := os.Stat(at("mint-out/SN-001005.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("minted key file: %v %v", fi, err)
	}
	csv, _ := os.ReadFile(at("mint-out/report.csv"))
	if strings.Count(string(csv), ",ok,") != 30 {
		t.Errorf("report.csv:\n%s", csv)
	}

	// A bad row is reported, and the exit code stays 0.
	writeFile(t, at("bad.csv"), "serial,model\nSN-000777,sensor-x\nXX-1,sensor-x\n")
	_, stderr, code = runCLI(t, append([]string{"--data-dir", dir}, append(mfgTok, "mfg", "batch", "submit", "--factory", "acme", "--key-mode", "mint", at("bad.csv"), "--out", at("bad-out"))...)...)
	if code != 0 || !strings.Contains(stderr, "1 rows were refused") {
		t.Fatalf("batch with a bad row: exit %d, %s", code, stderr)
	}
	// A batch the server refuses is a failure.
	if _, stderr, code := runCLI(t, "--data-dir", dir, "--token", created.Secret, "mfg", "batch", "submit", "--factory", "globex", at("bad.csv"), "--out", at("x")); code == 0 || !strings.Contains(stderr, "forbidden") {
		t.Fatalf("submit to another factory: exit %d, %s", code, stderr)
	}
	b := cliJSON[client.Batch](t, dir, "mfg", "batch", "get", "--factory", "acme", "B-47")
	if b.OK != 40 || b.Status != "done" {
		t.Errorf("batch get: %+v", b)
	}

	// The exported chains verify a birth certificate with openssl.
	cli(t, dir, "ca", "export", "--out", at("chains"))
	readme, _ := os.ReadFile(at("chains/README.txt"))
	if !strings.Contains(string(readme), "manufacturing-acme-chain.pem") {
		t.Errorf("README.txt:\n%s", readme)
	}
	out, err := exec.Command("openssl", "verify", "-CAfile", at("chains/root.pem"), "-untrusted", at("chains/manufacturing-acme-chain.pem"),
		at("csr-out/SN-000007.crt")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}

	if out := cli(t, dir, "ca", "rotate", "--purpose", "manufacturing", "--factory", "acme", "--overlap", "1h"); !strings.Contains(out, "active") {
		t.Errorf("ca rotate: %s", out)
	}
	if cas := cliJSON[struct{ Items []client.CA }](t, dir, "ca", "list", "--factory", "acme"); len(cas.Items) != 2 {
		t.Errorf("ca list: %+v", cas)
	}
	if out := cli(t, dir, "factories", "list"); !strings.Contains(out, "sensor-x,sensor-y") {
		t.Errorf("factories list: %s", out)
	}
	ch := cliJSON[client.Challenge](t, dir, "factories", "challenge", "maker")
	if len(ch.Nonce) != 64 {
		t.Errorf("factories challenge: %+v", ch)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCAInit runs the server-side ca init twice on one data directory.
func TestCAInit(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	first := cli(t, dir, "ca", "init", "--log-level", "warn", "-o", "json")
	var cas struct{ Items []client.CA }
	if err := json.Unmarshal([]byte(first), &cas); err != nil || len(cas.Items) != 3 {
		t.Fatalf("ca init: %s (%v)", first, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if again := cli(t, dir, "ca", "init", "--log-level", "warn", "-o", "json"); again != first {
		t.Errorf("second ca init differs:\n%s\n%s", first, again)
	}
}

// TestReadmeManufacturing runs the README's manufacturing block: a factory,
// its token, 1,000 devices in each key mode, the files on disk, openssl
// verify against the exported chains, an idempotent resubmission, and a
// revocation that openssl ocsp reports.
func TestReadmeManufacturing(t *testing.T) {
	text := runReadmeBlock(t, "manufacturing")
	for _, want := range []string{
		`SN-000001\.crt`,                 // the certificates on disk
		`SN-001001\.key`,                 // a minted key
		`URI:urn:muster:device:acme:SN-`, // the birth identity
		`batch-csr/SN-000001\.crt: OK`,   // openssl verify
		`Registered +1000\n`,             // a batch
		`Existing +1000\n`,               // the resubmission
		`Response verify OK`,             // OCSP answer signed by the factory CA
		`batch-csr/SN-000001\.crt: revoked`,
		`Reason: keyCompromise`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("manufacturing block output lacks %s:\n%s", want, text)
		}
	}
}

// TestReadmeProvisioningAndGateway runs the manufacturing block, the
// provisioning block (a template, one device provisioned and renewed with
// the CLI device, the whole minted batch through the simulator), then the
// gateway block: a simulated fleet on MQTT, its metering, a device refused
// other devices' topics and $SYS, quarantined live and dropped on
// revocation. One server runs all three, as a new user would.
func TestReadmeProvisioningAndGateway(t *testing.T) {
	text := runReadmeBlock(t, "manufacturing", "provisioning", "gateway")
	for _, want := range []string{
		`sensor-y +SN-001001 +provisioned`,
		`Provisioned +1000\n`, // sim provision: every minted device
		`Failed +0\n`,
		// sim fleet: every device manufactured, provisioned, connected,
		// publishing 2/s for 5 s (plus one report each), nothing dropped.
		`Manufactured +100 in`,
		`Provisioned +100 in`,
		`Connected +100 in`,
		`Dropped +0\n`,
		`Published +\d+ in [\d.]+ s \(\d+ msgs/s\), 0 refused, 0 failed`,
		// metering of one fleet device: one attempt, one connect, no
		// failures, messages in, and its disconnect once the fleet left.
		`(?m)^20\d\d-\d\d-\d\d \d\d:\d\d +1 +1 +0 +\d+ .*client:1 `,
		`muster_gateway_messages_in_total \d+`,
		`publish devices/dev_\w+/telemetry: ok`,
		`publish devices/dev_\w+/telemetry: refused \(not authorized\)`,
		`subscribe \$SYS/#: refused \(not authorized\)`,
		`session ended: disconnected by the gateway: reason 0x87`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("README output lacks %s:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "Published "); n != 1 {
		t.Errorf("want one sim fleet summary, got %d", n)
	}
	if published := regexp.MustCompile(`Published +(\d+) in`).FindStringSubmatch(text); published != nil {
		// 100 devices at 2/s for 5 s is about 1,000 telemetry messages
		// and 100 reports; far fewer means the fleet did not run.
		if n, _ := strconv.Atoi(published[1]); n < 800 {
			t.Errorf("the fleet published %d messages, want about 1,100", n)
		}
	}
}
