package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/store"
)

// DefaultTemplate is the template a request uses when neither it nor the
// device record names one.
const DefaultTemplate = "default"

// DefaultTemplateTTL is how long a node reuses a template it read: edits
// reach new requests within it, or at once on a node told of them
// (Pipeline.TemplateChanged).
const DefaultTemplateTTL = 2 * time.Second

// templateCache keeps parsed templates for a short while, so that a
// provisioning storm does not read and parse the same template for every
// device.
type templateCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cachedTemplate
	// gen counts forgets, so that a read that started before one does not
	// put back what it dropped.
	gen uint64
}

type cachedTemplate struct {
	t       *Template
	version int64
	at      time.Time
}

// errNoTemplate means the named template does not exist (or is deleted).
var errNoTemplate = errors.New("no such template")

// get returns the current version of template name.
func (c *templateCache) get(ctx context.Context, st Store, name string, now time.Time) (*Template, int64, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.t, e.version, nil
	}
	rec, err := st.Template(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, fmt.Errorf("template %q: %w", name, errNoTemplate)
	}
	if err != nil {
		return nil, 0, err
	}
	t, err := decodeTemplate(rec.Doc)
	if err != nil {
		return nil, 0, fmt.Errorf("stored template %s version %d: %w", name, rec.Version, err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cachedTemplate{}
	}
	if c.gen == gen {
		c.entries[name] = cachedTemplate{t: t, version: rec.Version, at: now}
	}
	c.mu.Unlock()
	return t, rec.Version, nil
}

// forget drops template name, or every template for notify.All.
func (c *templateCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if name == notify.All {
		clear(c.entries)
		return
	}
	delete(c.entries, name)
}

// TemplateChanged makes the next request that uses template name read it
// again; name notify.All means every template. A node calls it when it
// hears that another node created, changed or deleted a template (see
// internal/notify), so the change applies here at once instead of within
// the template TTL.
func (p *Pipeline) TemplateChanged(name string) { p.templates.forget(name) }

// decodeTemplate reads a stored template. Stored templates were validated
// with their defaults filled in; validating again keeps a hand-edited row
// from slipping past the rules.
func decodeTemplate(doc []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(doc, &t); err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}
