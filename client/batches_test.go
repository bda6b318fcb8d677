package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
)

// TestRealAPIManufacturingLine registers a factory, streams a batch up
// while its results stream down, and reads factories, batches and CAs.
func TestRealAPIManufacturingLine(t *testing.T) {
	r := startRealAPI(t)
	ctx := context.Background()
	f, err := r.admin.CreateFactory(ctx, FactoryRequest{Name: "acme", Models: []string{"sensor-x"}, SerialPattern: "SN-[0-9]{6}"})
	if err != nil || f.CAMode != CAManaged || len(f.CAs) != 1 || f.CAs[0].Purpose != "manufacturing" {
		t.Fatalf("CreateFactory = %+v, %v", f, err)
	}
	created, err := r.admin.CreateToken(ctx, TokenRequest{Name: "line-1", Role: RoleManufacturer, Factory: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	line := r.clientWithSecret(t, created.Secret)

	var first, rest bytes.Buffer
	if err := mfg.GenerateManifest(&first, mfg.GenerateOptions{Model: "sensor-x", Count: 1000, WithCSR: true}); err != nil {
		t.Fatal(err)
	}
	if err := mfg.GenerateManifest(&rest, mfg.GenerateOptions{Model: "sensor-x", Count: 500, Start: 1001, WithCSR: true}); err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(rest.String(), "\n") // no second header
	// The second part is sent only once results of the first came back:
	// without full-duplex streaming this would never finish.
	pr, pw := io.Pipe()
	answered := make(chan struct{})
	go func() {
		_, _ = pw.Write(first.Bytes())
		select {
		case <-answered:
			_, _ = pw.Write([]byte(body))
			_ = pw.Close()
		case <-time.After(30 * time.Second):
			_ = pw.CloseWithError(errors.New("no result arrived while the upload was open"))
		}
	}()
	var results []BatchResult
	report, err := line.SubmitBatch(ctx, "acme", pr, BatchOptions{Format: FormatCSV, Batch: "B-1"}, func(res BatchResult) error {
		if len(results) == 0 {
			close(answered)
		}
		results = append(results, res)
		return nil
	})
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	if report.Batch != "B-1" || report.Summary.OK != 1500 || len(results) != 1500 || results[1499].Serial != "SN-001500" || results[0].Line != 2 {
		t.Fatalf("report %+v, %d results", report, len(results))
	}
	b, err := line.GetBatch(ctx, "acme", "B-1")
	if err != nil || b.Status != "done" || b.OK != 1500 {
		t.Fatalf("GetBatch = %+v, %v", b, err)
	}

	// A manufacturer cannot submit to another factory; onResult can stop a batch.
	if _, err := r.admin.CreateFactory(ctx, FactoryRequest{Name: "globex", Models: []string{"m"}, SerialPattern: ".*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := line.SubmitBatch(ctx, "globex", strings.NewReader("serial,model\n"), BatchOptions{Format: FormatCSV}, nil); !HasCode(err, CodeForbidden) {
		t.Fatalf("submit to another factory: %v, want forbidden", err)
	}
	stop := errors.New("enough")
	if _, err := line.SubmitBatch(ctx, "acme", bytes.NewReader(first.Bytes()), BatchOptions{Format: FormatCSV}, func(BatchResult) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("onResult error: %v", err)
	}
	if fs, err := line.ListFactories(ctx); err != nil || len(fs) != 1 || fs[0].Name != "acme" {
		t.Fatalf("manufacturer ListFactories = %+v, %v", fs, err)
	}
	if _, err := line.GetFactory(ctx, "globex"); !HasCode(err, CodeNotFound) {
		t.Fatalf("manufacturer GetFactory(other) = %v", err)
	}

	ch, err := r.admin.FactoryChallenge(ctx, "maker", 10*time.Minute)
	if err != nil || len(ch.Nonce) != 64 || time.Until(ch.ExpiresAt) > 10*time.Minute {
		t.Fatalf("FactoryChallenge = %+v, %v", ch, err)
	}
	rotated, err := r.admin.RotateCA(ctx, RotateRequest{Purpose: "manufacturing", Factory: "acme", Overlap: time.Hour})
	if err != nil || rotated.Status != CAActive {
		t.Fatalf("RotateCA = %+v, %v", rotated, err)
	}
	cas, err := r.admin.ListCAs(ctx, CAFilter{Factory: "acme"})
	if err != nil || len(cas) != 2 || cas[0].Status != CARetiring || cas[0].RetireAt == nil {
		t.Fatalf("ListCAs = %+v, %v", cas, err)
	}
	chains, err := r.admin.CAChains(ctx)
	if err != nil || chains[0].FileName != "root.pem" || !strings.Contains(chains[len(chains)-2].FileName+chains[len(chains)-1].FileName, "manufacturing-acme-chain.pem") {
		t.Fatalf("CAChains = %v, %v", chains, err)
	}
}
