package deviceauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/muster-iot/muster/internal/pki"
)

func TestRequire(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, found := IdentityFrom(r.Context()); !found {
			t.Error("admitted request has no identity")
		}
	})
	birth := pki.Identity{Kind: pki.IdentityBirth, Factory: "f1", Serial: "SN-1"}
	operational := pki.Identity{Kind: pki.IdentityOperational, DeviceID: "dev_1"}
	both := []pki.IdentityKind{pki.IdentityBirth, pki.IdentityOperational}
	for _, tc := range []struct {
		name  string
		kinds []pki.IdentityKind
		id    *pki.Identity
		want  int
	}{
		{"birth on a birth route", []pki.IdentityKind{pki.IdentityBirth}, &birth, http.StatusOK},
		{"operational on a birth route", []pki.IdentityKind{pki.IdentityBirth}, &operational, http.StatusForbidden},
		{"birth on an operational route", []pki.IdentityKind{pki.IdentityOperational}, &birth, http.StatusForbidden},
		{"either on a route for both", both, &operational, http.StatusOK},
		{"route naming no kind", nil, &birth, http.StatusForbidden},
		{"no identity at all", both, nil, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.id != nil {
				ctx = WithIdentity(ctx, *tc.id)
			}
			w := httptest.NewRecorder()
			Require(tc.kinds, slog.New(slog.DiscardHandler), ok).ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
			if w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
}
