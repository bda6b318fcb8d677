package provision

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/store"
)

// TestTemplateCacheForgets: within its TTL the cache serves the version it
// read; once told the template changed, it reads the new one at once.
func TestTemplateCacheForgets(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	doc := func(factory string) json.RawMessage {
		return json.RawMessage(`{"name":"t1","factories":["` + factory + `"]}`)
	}
	if _, err := st.PutTemplate(ctx, "t1", doc("f1"), true, "test"); err != nil {
		t.Fatal(err)
	}
	c := &templateCache{ttl: time.Hour}
	now := time.Now()
	if _, v, err := c.get(ctx, st, "t1", now); err != nil || v != 1 {
		t.Fatalf("get = version %d, %v; want 1", v, err)
	}
	if _, err := st.PutTemplate(ctx, "t1", doc("f2"), false, "test"); err != nil {
		t.Fatal(err)
	}
	if _, v, _ := c.get(ctx, st, "t1", now); v != 1 {
		t.Fatalf("cached version %d before forget, want 1: the test proves nothing", v)
	}
	c.forget("t1")
	tmpl, v, err := c.get(ctx, st, "t1", now)
	if err != nil || v != 2 || tmpl.Factories[0] != "f2" {
		t.Fatalf("after forget: version %d (%v), want 2 naming f2", v, err)
	}
	if _, err := st.PutTemplate(ctx, "t1", doc("f3"), false, "test"); err != nil {
		t.Fatal(err)
	}
	c.forget(notify.All)
	if _, v, _ := c.get(ctx, st, "t1", now); v != 3 {
		t.Fatalf("after forgetting all: version %d, want 3", v)
	}
}
