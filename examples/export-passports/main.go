// Command export-passports writes the digital passport of every device that
// matches a filter, one JSON file per device, walking the device list page
// by page with the SDK's iterator, and verifies each device's hash-chained
// history on the way. An auditor token is enough.
//
//	MUSTER_SERVER=https://127.0.0.1:8443 MUSTER_TOKEN=... MUSTER_CA_FILE=muster-data/ca.pem \
//	    go run ./examples/export-passports -factory acme -out passports
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/muster-iot/muster/client"
)

func main() {
	server := flag.String("server", os.Getenv("MUSTER_SERVER"), "admin API URL (MUSTER_SERVER)")
	token := flag.String("token", os.Getenv("MUSTER_TOKEN"), "API token, an auditor's will do (MUSTER_TOKEN)")
	caFile := flag.String("ca-file", os.Getenv("MUSTER_CA_FILE"), "Muster's CA certificate, ca.pem (MUSTER_CA_FILE)")
	factory := flag.String("factory", "", "only devices of this factory")
	model := flag.String("model", "", "only devices of this model")
	state := flag.String("state", "", "only devices in this lifecycle state")
	out := flag.String("out", "passports", "directory for DEVICE-ID.json files")
	flag.Parse()
	if *server == "" || *token == "" {
		log.Fatal("export-passports: give -server and -token (or MUSTER_SERVER and MUSTER_TOKEN)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	opts := []client.Option{client.WithToken(*token)}
	if *caFile != "" {
		opts = append(opts, client.WithCAFile(*caFile))
	}
	c, err := client.New(*server, opts...)
	if err != nil {
		log.Fatalf("export-passports: %v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatalf("export-passports: %v", err)
	}

	var exported, broken int
	filter := client.DeviceFilter{Factory: *factory, Model: *model, State: client.State(*state)}
	// Devices fetches the next page only when the loop needs it, and
	// retries throttled requests on its own.
	for d, err := range c.Devices(ctx, filter) {
		if err != nil {
			log.Fatalf("export-passports: list devices: %v", err)
		}
		p, err := c.Passport(ctx, d.ID)
		if err != nil {
			log.Fatalf("export-passports: passport of %s: %v", d.ID, err)
		}
		v, err := c.VerifyHistory(ctx, d.ID)
		if err != nil {
			log.Fatalf("export-passports: verify history of %s: %v", d.ID, err)
		}
		if !v.OK {
			broken++
			fmt.Fprintf(os.Stderr, "%s: history does not verify: %+v\n", d.ID, v)
		}
		data, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			log.Fatalf("export-passports: %v", err)
		}
		if err := os.WriteFile(filepath.Join(*out, d.ID+".json"), append(data, '\n'), 0o644); err != nil {
			log.Fatalf("export-passports: %v", err)
		}
		exported++
	}
	fmt.Printf("exported %d passports to %s (%d with a broken history)\n", exported, *out, broken)
	if broken > 0 {
		os.Exit(1)
	}
}
