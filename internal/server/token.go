package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/store"
)

// ensureAdminToken makes sure <data-dir>/admin.token holds a working admin
// token. The first start creates it; later starts reuse it, and re-register
// its hash if the database is new (for example a fresh PostgreSQL).
func ensureAdminToken(ctx context.Context, st *store.Store, cfg Config) error {
	path := cfg.path("admin.token")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		secret := strings.TrimSpace(string(data))
		if secret == "" {
			return fmt.Errorf("%s is empty: delete it to have a new admin token created", path)
		}
		_, err := st.TokenByHash(ctx, api.HashToken(secret))
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return st.CreateToken(ctx, &store.Token{Name: "admin", Role: "admin", Hash: api.HashToken(secret)}, "system/bootstrap")
	case errors.Is(err, fs.ErrNotExist):
		secret, hash := api.NewTokenSecret()
		if err := st.CreateToken(ctx, &store.Token{Name: "admin", Role: "admin", Hash: hash}, "system/bootstrap"); err != nil {
			return err
		}
		if err := writeFileAtomic(path, []byte(secret+"\n"), 0o600); err != nil {
			return err
		}
		cfg.logger().Info("created the admin API token", "file", path)
		return nil
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
}
