package ca

import (
	"context"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
)

// TestChangedShowsAnotherNodesRotation: node B, whose view would stay
// cached for an hour, signs with the CA node A rotated to as soon as it is
// told the registry changed, loading the new key through the database.
func TestChangedShowsAnotherNodesRotation(t *testing.T) {
	for name, st := range keyBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			opts := Options{RefreshInterval: time.Hour}
			a, err := Open(ctx, st, NewSharedKeys(fastKeys(t, t.TempDir(), testPassphrase), st), opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(ctx, st, NewSharedKeys(fastKeys(t, t.TempDir(), testPassphrase), st), opts)
			if err != nil {
				t.Fatal(err)
			}
			next, err := a.Rotate(ctx, pki.PurposeOperational, "", time.Hour, "admin/a")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := b.IssuerFor(ctx, pki.PurposeOperational, ""); got.ID == next.ID {
				t.Fatal("node B saw the rotation before being told: the test proves nothing")
			}
			b.Changed()
			got, err := b.IssuerFor(ctx, pki.PurposeOperational, "")
			if err != nil {
				t.Fatalf("node B after the rotation: %v", err)
			}
			if got.ID != next.ID || got.Signer == nil {
				t.Fatalf("node B signs with %s, want the rotated CA %s with its key", got.ID, next.ID)
			}
		})
	}
}
