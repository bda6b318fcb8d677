// Command register-batch registers a factory's batch of devices through
// Muster's Go SDK: it makes sure the factory exists, submits a manifest of
// count devices with keys minted by Muster, and writes each device's birth
// certificate and key into a directory, where provision-fleet finds them.
//
//	MUSTER_SERVER=https://127.0.0.1:8443 MUSTER_TOKEN=... MUSTER_CA_FILE=muster-data/ca.pem \
//	    go run ./examples/register-batch -factory acme -model sensor-x -count 100 -out fleet
//
// Submitting the same batch again is safe: existing serials are reported as
// existing and nothing is issued twice.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/muster-iot/muster/client"
)

func main() {
	server := flag.String("server", os.Getenv("MUSTER_SERVER"), "admin API URL (MUSTER_SERVER)")
	token := flag.String("token", os.Getenv("MUSTER_TOKEN"), "API token of an admin or operator (MUSTER_TOKEN)")
	caFile := flag.String("ca-file", os.Getenv("MUSTER_CA_FILE"), "Muster's CA certificate, ca.pem (MUSTER_CA_FILE)")
	factory := flag.String("factory", "acme", "factory that made the devices; created when missing")
	model := flag.String("model", "sensor-x", "device model")
	prefix := flag.String("prefix", "EX-", "serial number prefix; serials are prefix + a 6-digit number")
	start := flag.Int("start", 1, "first serial number")
	count := flag.Int("count", 10, "number of devices")
	out := flag.String("out", "fleet", "directory for the birth certificates and keys")
	flag.Parse()
	if *server == "" || *token == "" || *count < 1 {
		log.Fatal("register-batch: give -server and -token (or MUSTER_SERVER and MUSTER_TOKEN) and a positive -count")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	opts := []client.Option{client.WithToken(*token)}
	if *caFile != "" {
		opts = append(opts, client.WithCAFile(*caFile))
	}
	c, err := client.New(*server, opts...)
	if err != nil {
		log.Fatalf("register-batch: %v", err)
	}

	// The factory gets its own manufacturing CA on creation; a factory
	// that exists already is used as it is.
	_, err = c.CreateFactory(ctx, client.FactoryRequest{
		Name: *factory, Models: []string{*model}, SerialPattern: regexp.QuoteMeta(*prefix) + "[0-9]{6}",
	})
	if err != nil && !client.HasCode(err, client.CodeDuplicate) {
		log.Fatalf("register-batch: create factory %s: %v", *factory, err)
	}

	if err := os.MkdirAll(*out, 0o700); err != nil {
		log.Fatalf("register-batch: %v", err)
	}
	var manifest strings.Builder
	manifest.WriteString("serial,model\n")
	for i := range *count {
		fmt.Fprintf(&manifest, "%s%06d,%s\n", *prefix, *start+i, *model)
	}
	// Results stream back row by row; the minted key of each device comes
	// only now, once, so it is written at once.
	report, err := c.SubmitBatch(ctx, *factory, strings.NewReader(manifest.String()),
		client.BatchOptions{Format: client.FormatCSV, KeyMode: client.KeyModeMint},
		func(r client.BatchResult) error {
			switch r.Status {
			case "ok":
				if err := os.WriteFile(filepath.Join(*out, r.Serial+".crt"), []byte(r.CertificatePEM), 0o644); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(*out, r.Serial+".key"), []byte(r.KeyPEM), 0o600)
			case "error":
				fmt.Fprintf(os.Stderr, "line %d (%s): %s\n", r.Line, r.Serial, r.Message)
			}
			return nil
		})
	if err != nil {
		log.Fatalf("register-batch: %v", err)
	}
	s := report.Summary
	fmt.Printf("batch %s: %d rows, %d registered, %d existing, %d refused\n", report.Batch, s.Rows, s.OK, s.Existing, s.Errors)
	if s.Errors > 0 {
		os.Exit(1)
	}
}
