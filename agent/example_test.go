package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"os"
	"time"

	"github.com/muster-iot/muster/agent"
)

// A device's main loop: provision with the birth certificate on first
// boot, then keep the operational certificate renewed. The files are
// what `muster mfg batch submit --key-mode mint` writes for each device
// and Muster's ca.pem.
func Example() {
	birth, err := tls.LoadX509KeyPair("/factory/birth.crt", "/factory/birth.key")
	if err != nil {
		log.Fatal(err)
	}
	caPEM, err := os.ReadFile("/factory/muster-ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	a, err := agent.New(agent.Config{
		Server:     "https://muster.example:9443",
		Roots:      roots,
		Birth:      birth,
		Dir:        "/data/muster", // credentials.pem and provisioning.json live here
		Template:   "streetlights",
		Parameters: map[string]any{"site": "lyon-depot-2"},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
