// Command provision-fleet provisions every device whose birth certificate
// register-batch wrote, each as the device itself would with Muster's agent
// package: it sends a CSR for a key it makes over mTLS with its birth
// certificate and keeps the operational certificate it gets back. With
// -mqtt, each device then connects to the gateway with it and publishes
// one telemetry message.
//
// The admin API is used once, to make sure a provisioning template exists
// for the factory (the devices themselves never use it).
//
//	MUSTER_SERVER=https://127.0.0.1:8443 MUSTER_TOKEN=... MUSTER_CA_FILE=muster-data/ca.pem \
//	    go run ./examples/provision-fleet -factory acme -dir fleet \
//	    -device-server https://localhost:9443 -mqtt localhost:8883
//
// Running it again re-provisions the devices under the template's
// re-provisioning policy.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
)

func main() {
	server := flag.String("server", os.Getenv("MUSTER_SERVER"), "admin API URL (MUSTER_SERVER)")
	token := flag.String("token", os.Getenv("MUSTER_TOKEN"), "API token of an admin or operator (MUSTER_TOKEN)")
	caFile := flag.String("ca-file", os.Getenv("MUSTER_CA_FILE"), "Muster's CA certificate, ca.pem (MUSTER_CA_FILE); required")
	deviceServer := flag.String("device-server", "", "device listener URL, e.g. https://localhost:9443 (muster-data/device.addr)")
	mqttAddr := flag.String("mqtt", "", "gateway host:port; when set, each device connects and publishes once")
	factory := flag.String("factory", "acme", "factory of the devices")
	template := flag.String("template", "fleet-example", "provisioning template; created when missing")
	dir := flag.String("dir", "fleet", "directory of SERIAL.crt and SERIAL.key birth credentials")
	concurrency := flag.Int("concurrency", 8, "devices provisioning at once")
	flag.Parse()
	if *server == "" || *token == "" || *caFile == "" || *deviceServer == "" {
		log.Fatal("provision-fleet: give -server, -token and -ca-file (or MUSTER_SERVER, MUSTER_TOKEN, MUSTER_CA_FILE) and -device-server")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	admin, err := client.New(*server, client.WithToken(*token), client.WithCAFile(*caFile))
	if err != nil {
		log.Fatalf("provision-fleet: %v", err)
	}
	if err := ensureTemplate(ctx, admin, *template, *factory); err != nil {
		log.Fatalf("provision-fleet: %v", err)
	}

	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("provision-fleet: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatalf("provision-fleet: no certificate in %s", *caFile)
	}
	certs, err := filepath.Glob(filepath.Join(*dir, "*.crt"))
	if err != nil || len(certs) == 0 {
		log.Fatalf("provision-fleet: no birth certificates (*.crt) in %s: run register-batch first", *dir)
	}

	var provisioned, published, failed atomic.Int64
	work := make(chan string)
	var wg sync.WaitGroup
	for range max(1, *concurrency) {
		wg.Go(func() {
			for crt := range work {
				sent, err := provisionOne(ctx, crt, *deviceServer, *mqttAddr, *template, roots)
				if err != nil {
					failed.Add(1)
					fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(crt), err)
					continue
				}
				provisioned.Add(1)
				if sent {
					published.Add(1)
				}
			}
		})
	}
	started := time.Now()
	for _, crt := range certs {
		work <- crt
	}
	close(work)
	wg.Wait()
	fmt.Printf("provisioned %d devices (%d failed, %d published telemetry) in %v\n",
		provisioned.Load(), failed.Load(), published.Load(), time.Since(started).Round(time.Millisecond))
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

// ensureTemplate creates a template for the factory's devices unless one
// by that name exists. Each device may publish its own telemetry.
func ensureTemplate(ctx context.Context, admin *client.Client, name, factory string) error {
	_, err := admin.GetTemplate(ctx, name)
	if err == nil || !client.HasCode(err, client.CodeNotFound) {
		return err
	}
	doc, err := json.Marshal(map[string]any{
		"name":           name,
		"factories":      []string{factory},
		"device":         map[string]any{"topics": map[string]any{"publish": []string{"devices/{{device.id}}/telemetry"}}},
		"approval":       "auto",
		"reprovisioning": "reset",
	})
	if err != nil {
		return err
	}
	if _, err := admin.CreateTemplate(ctx, doc); err != nil && !client.HasCode(err, client.CodeDuplicate) {
		return fmt.Errorf("create template %s: %w", name, err)
	}
	return nil
}

// provisionOne provisions the device whose birth certificate is crt (its
// key beside it), keeping its credentials in a directory named after it,
// and, with mqttAddr, publishes one telemetry message as it.
func provisionOne(ctx context.Context, crt, deviceServer, mqttAddr, template string, roots *x509.CertPool) (published bool, err error) {
	base := strings.TrimSuffix(crt, ".crt")
	birth, err := tls.LoadX509KeyPair(crt, base+".key")
	if err != nil {
		return false, err
	}
	ag, err := agent.New(agent.Config{
		Server: deviceServer, Roots: roots, Birth: birth, Template: template,
		Dir: base + ".d", // credentials.pem and provisioning.json
	})
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	creds, err := ag.Provision(ctx)
	if err != nil {
		return false, err
	}
	if mqttAddr == "" {
		return false, nil
	}
	sess, err := ag.ConnectMQTT(ctx, agent.MQTTConfig{Addr: mqttAddr})
	if err != nil {
		return false, err
	}
	defer sess.Close()
	payload := fmt.Sprintf(`{"at":%q,"temperature":21.5}`, time.Now().UTC().Format(time.RFC3339))
	if err := sess.Publish(ctx, "devices/"+creds.DeviceID+"/telemetry", []byte(payload)); err != nil {
		return false, err
	}
	return true, nil
}
