package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/api"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/store"
)

// TestCLIProvisioning drives templates, approvals, claims and the
// command-line device against a provisioning node and the admin API on
// one store.
func TestCLIProvisioning(t *testing.T) {
	isolateEnv(t)
	n := pt.Start(t)
	secret, hash := api.NewTokenSecret()
	if err := n.Store.CreateToken(context.Background(), &store.Token{Name: "admin", Role: "admin", Hash: hash}, "test"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(api.New(api.Config{Store: n.Store}).Handler())
	t.Cleanup(srv.Close)
	dataDir := dataDirFor(t, srv, secret)
	dir := t.TempDir()

	tmplFile := filepath.Join(dir, "template.yaml")
	writeFile(t, tmplFile, `name: default
factories: [f1]
models: [m1]
parameters:
  - {name: site, type: string, required: true}
device:
  attributes: {site: "{{param.site}}"}
approval: manual
reprovisioning: reset
`)
	rec := cliJSON[client.TemplateRecord](t, dataDir, "templates", "create", "-f", tmplFile)
	if rec.Name != "default" || rec.Version != 1 {
		t.Fatalf("created %+v", rec)
	}
	if out := cli(t, dataDir, "templates", "list"); !strings.Contains(out, "default") {
		t.Errorf("templates list: %s", out)
	}
	writeFile(t, filepath.Join(dir, "bad.yaml"), "name: x\napproval: sometimes\n")
	if _, stderr, code := runCLI(t, "--data-dir", dataDir, "templates", "create", "-f", filepath.Join(dir, "bad.yaml")); code == 0 || !strings.Contains(stderr, "approval") {
		t.Errorf("a bad template: exit %d, %s", code, stderr)
	}

	// A device with its birth certificate, through manual approval.
	dev := n.Manufacture(t)
	birthCrt, birthKey := writeBirth(t, dir, dev.Birth.Certificate, dev.Birth.Key, dev.Identity.Serial)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, string(certPEM(n.PKI.Root.Certificate())))
	server := strings.Replace(n.URL(""), "127.0.0.1", "localhost", 1)
	out := filepath.Join(dir, "device")
	provisionArgs := []string{"device", "provision", "--birth-cert", birthCrt, "--birth-key", birthKey, "--server", server,
		"--ca", caFile, "--out", out, "--param", "site=lyon"}
	if _, stderr, code := runCLI(t, append(provisionArgs, "--wait", "1ms")...); code == 0 || !strings.Contains(stderr, "202") {
		t.Fatalf("provisioned before approval? exit %d: %s", code, stderr)
	}
	pending := cliJSON[struct{ Items []client.ProvisioningRequest }](t, dataDir, "approvals", "list").Items
	if len(pending) != 1 || pending[0].DeviceID != dev.ID {
		t.Fatalf("approvals list = %+v", pending)
	}
	cli(t, dataDir, "approvals", "approve", pending[0].ID, "--reason", "site survey done")
	got := cliJSON[provisioned](t, dataDir, provisionArgs...)
	if got.DeviceID != dev.ID {
		t.Fatalf("device provision printed %+v", got)
	}
	renewed := cliJSON[provisioned](t, dataDir, "device", "renew", "--dir", out, "--server", server, "--ca", caFile)
	if renewed.DeviceID != dev.ID {
		t.Errorf("device renew printed %+v", renewed)
	}

	// Claims are for installers.
	claim := cliJSON[client.CreatedClaim](t, dataDir, "claims", "create", "--factory", "f1", "--model", "m1", "--serial", "FIELD-9", "--expires", "10m")
	if !strings.HasPrefix(claim.Secret, "mcl_") || claim.Claim.Serial != "FIELD-9" {
		t.Errorf("claim %+v", claim)
	}

	// A small batch through the simulator, with a template that approves.
	writeFile(t, tmplFile, "name: auto\nfactories: [f1]\n")
	cli(t, dataDir, "templates", "create", "-f", tmplFile)
	batch := filepath.Join(dir, "batch")
	mkdir(t, batch)
	for range 5 {
		d := n.Manufacture(t)
		writeBirth(t, batch, d.Birth.Certificate, d.Birth.Key, d.Identity.Serial)
	}
	rep := cliJSON[simReport](t, dataDir, "sim", "provision", "--batch", batch, "--concurrency", "3", "--server", server, "--ca", caFile, "--template", "auto")
	if rep.OK != 5 || rep.Failed != 0 || rep.PerSecond <= 0 {
		t.Errorf("sim provision: %+v", rep)
	}
}

// writeBirth writes a birth credential as the manufacturing line does:
// <serial>.crt and <serial>.key.
func writeBirth(t *testing.T, dir string, cert *x509.Certificate, key any, serial string) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt, k := filepath.Join(dir, serial+".crt"), filepath.Join(dir, serial+".key")
	writeFile(t, crt, string(certPEM(cert)))
	if err := os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, k
}
