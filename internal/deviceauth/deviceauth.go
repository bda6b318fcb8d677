// Package deviceauth carries the identity a device proved with its client
// certificate from the TLS handshake to the handlers of device-facing
// routes, and admits each route only to the identity kinds it names. It is
// a package of its own so that the handlers (provisioning, renewal) and the
// listener that serves them depend on it, not on each other.
package deviceauth

import (
	"context"
	"log/slog"
	"net/http"
	"slices"

	"github.com/muster-iot/muster/internal/pki"
)

type identityKey struct{}

// WithIdentity returns ctx carrying the verified identity id.
func WithIdentity(ctx context.Context, id pki.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the verified identity a device request carries.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// Require admits requests whose verified identity is of one of kinds and
// refuses all others with 403, so that a birth certificate, say, never
// reaches an operational route. Without kinds it admits nobody: a route
// must say whom it serves. The device learns only that it was refused;
// the reason goes to log.
func Require(kinds []pki.IdentityKind, log *slog.Logger, h http.Handler) http.Handler {
	kinds = slices.Clone(kinds)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := IdentityFrom(r.Context())
		if !ok || !slices.Contains(kinds, id.Kind) {
			log.InfoContext(r.Context(), "device request refused: identity kind not admitted on this route",
				"path", r.URL.Path, "kind", id.Kind, "admitted", kinds, "serial", id.Serial, "device", id.DeviceID, "remote", r.RemoteAddr)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
