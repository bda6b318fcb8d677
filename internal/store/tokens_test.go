package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		exp := time.Now().Add(720 * time.Hour)
		tok := &Token{Name: "line 1", Role: "manufacturer", Factory: "f1", Hash: strings.Repeat("ab", 32), ExpiresAt: &exp}
		if err := s.CreateToken(ctx, tok, "admin"); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		if !strings.HasPrefix(tok.ID, "tok_") || tok.CreatedBy != "admin" || tok.CreatedAt.IsZero() {
			t.Fatalf("CreateToken left %+v", tok)
		}
		other := &Token{Name: "ops", Role: "operator", Hash: strings.Repeat("cd", 32)}
		if err := s.CreateToken(ctx, other, "admin"); err != nil {
			t.Fatal(err)
		}

		byHash, err := s.TokenByHash(ctx, tok.Hash)
		if err != nil {
			t.Fatalf("TokenByHash: %v", err)
		}
		mustEqual(t, "token by hash", *byHash, *tok)
		byID, err := s.GetToken(ctx, tok.ID)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		mustEqual(t, "token by id", *byID, *tok)
		if _, err := s.TokenByHash(ctx, "00"); !errors.Is(err, ErrNotFound) {
			t.Errorf("TokenByHash(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.GetToken(ctx, "tok_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetToken(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.CreateToken(ctx, &Token{Name: "dup", Role: "admin", Hash: tok.Hash}, "admin"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateToken(same hash) = %v, want ErrDuplicate", err)
		}
		var fe *fleet.FieldError
		if err := s.CreateToken(ctx, &Token{Name: "x", Hash: "ff"}, "admin"); !errors.As(err, &fe) || fe.Field != "role" {
			t.Errorf("CreateToken(no role) = %v, want a FieldError on role", err)
		}

		list, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "listed", []string{list[0].ID, list[1].ID}, []string{tok.ID, other.ID})

		if err := s.RevokeToken(ctx, tok.ID, "admin"); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		if err := s.RevokeToken(ctx, tok.ID, "admin"); err != nil {
			t.Fatalf("RevokeToken again: %v", err)
		}
		if err := s.RevokeToken(ctx, "tok_nope", "admin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeToken(unknown) = %v, want ErrNotFound", err)
		}
		got, _ := s.GetToken(ctx, tok.ID)
		if got.RevokedAt == nil {
			t.Fatal("revoked token has no RevokedAt")
		}

		evs := mustVerify(t, s, fleet.FleetSubject, 3)
		mustEqual(t, "audit types", []string{evs[0].Type, evs[1].Type, evs[2].Type},
			[]string{fleet.EventTokenCreated, fleet.EventTokenCreated, fleet.EventTokenRevoked})
		for _, e := range evs {
			mustEqual(t, "audit actor", e.Actor, "admin")
			if strings.Contains(string(e.Data), tok.Hash) || strings.Contains(string(e.Data), other.Hash) {
				t.Errorf("audit event %d leaks a token hash: %s", e.Seq, e.Data)
			}
		}
		var created map[string]any
		_ = json.Unmarshal(evs[0].Data, &created)
		mustEqual(t, "audited id", created["id"], any(tok.ID))
		mustEqual(t, "audited role", created["role"], any("manufacturer"))
	})
}
