package est_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/est"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

// TestReadmeCurlOpenSSL runs the README's EST block verbatim with the real
// curl and openssl binaries against a node on loopback.
func TestReadmeCurlOpenSSL(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- est:start -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- est:end -->")
	if !ok || !ok2 {
		t.Fatal("README has no EST block between <!-- est:start --> and <!-- est:end -->")
	}

	n := pt.Start(t)
	est.Register(n.Listener, n.Pipeline, nil)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(dev.Birth.Key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"EST="+strings.Replace(n.URL(est.PathPrefix), "127.0.0.1", "localhost", 1),
		"CA="+write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: n.PKI.Root.Certificate().Raw}),
		"BIRTH_CRT="+write("birth.crt", &pem.Block{Type: "CERTIFICATE", Bytes: dev.Birth.Certificate.Raw},
			&pem.Block{Type: "CERTIFICATE", Bytes: n.PKI.Manufacturing.Certificate().Raw}),
		"BIRTH_KEY="+write("birth.key", &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README EST block failed: %v\n%s", err, out)
	}
	d, err := n.Store.GetDevice(t.Context(), dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Lifecycle.State != fleet.StateProvisioned {
		t.Errorf("device is %s after EST enrollment", d.Lifecycle.State)
	}
	if !pt.HasEvent(n.Events(t, dev.ID), provision.EventRenewed, "") {
		t.Error("the README's reenroll did not renew")
	}
}
