package region

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"
	"time"
)

// BenchmarkChooseLowestLatency is one allocation among three regions from
// five samples each: what the pipeline adds to a provisioning.
func BenchmarkChooseLowestLatency(b *testing.B) {
	rs := testRegions()
	in := Input{DeviceID: "dev_1", Measurements: map[string]Measurement{
		"eu": {SamplesMs: []float64{21, 22, 23, 22, 24}}, "us": {SamplesMs: []float64{81, 82, 85, 83, 84}}, "ap": {SamplesMs: []float64{240, 245, 243, 250, 241}}}}
	var a Allocator
	for b.Loop() {
		if _, err := a.Choose(context.Background(), Policy{}, rs, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChooseWeighted is one weighted allocation among 20 regions.
func BenchmarkChooseWeighted(b *testing.B) {
	var rs []Region
	for i := range 20 {
		rs = append(rs, Region{Name: fmt.Sprintf("r%02d", i), Weight: 1 + i%3, Status: "enabled"})
	}
	var a Allocator
	i := 0
	for b.Loop() {
		i++
		if _, err := a.Choose(context.Background(), Policy{Policy: PolicyWeighted}, rs, Input{DeviceID: fmt.Sprintf("dev_%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBootstrap signs (what GET /v1/bootstrap costs the node) and
// verifies (what the device does) a document of three regions, ES256.
func BenchmarkBootstrap(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	roots, chain := testChain(b, key, x509.ExtKeyUsageServerAuth)
	doc := testDoc(time.Now())
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := SignBootstrap(doc, key, chain); err != nil {
				b.Fatal(err)
			}
		}
	})
	jws, _ := SignBootstrap(doc, key, chain)
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyBootstrap(jws, roots, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
