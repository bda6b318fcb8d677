package store

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/muster-iot/muster/internal/fleet"
)

// maxBatchRetries bounds how often CreateDevices starts over after another
// writer registered one of its devices between its check and its insert.
const maxBatchRetries = 3

// batchChunk is how many devices are prepared and written together: enough
// for multi-row INSERTs and COPY to pay off, few enough that writing one
// chunk overlaps preparing the next. The first chunk is smaller, since the
// database idles until it is ready.
const (
	batchChunk      = 1000
	firstBatchChunk = 250
)

// chunkBounds splits n devices into chunks: chunk c is [b[c], b[c+1]).
func chunkBounds(n int) []int {
	b := []int{0}
	for lo := 0; lo < n; {
		size := batchChunk
		if lo == 0 {
			size = firstBatchChunk
		}
		lo = min(lo+size, n)
		b = append(b, lo)
	}
	return b
}

// CreateDevices registers many devices in one transaction: the path for
// manufacturing manifests. It is idempotent: a device whose factory, model
// and serial are already registered (or that repeats an earlier entry of ds)
// is not inserted, inserted[i] is false, and *ds[i] is overwritten with the
// stored record so the caller learns its id. Inserted devices get what
// CreateDevice assigns. A device that fails validation fails the whole call
// with an error naming its index (errors.As finds the *fleet.FieldError);
// nothing is written then.
func (s *Store) CreateDevices(ctx context.Context, ds []*fleet.Device, actor string) (inserted []bool, err error) {
	return s.createDevices(ctx, ds, actor, nil)
}

// afterInsert writes what goes with a batch of new devices, inside the
// transaction that inserted them: created[i] is the new record of ds[i], or
// nil when ds[i] was not inserted. It runs again if the transaction is
// retried.
type afterInsert func(ctx context.Context, t *txn, created []*fleet.Device) error

// createDevices is CreateDevices with an afterInsert hook (nil for none).
func (s *Store) createDevices(ctx context.Context, ds []*fleet.Device, actor string, after afterInsert) (inserted []bool, err error) {
	if len(ds) == 0 {
		return []bool{}, nil
	}
	for i, d := range ds {
		if d == nil {
			return nil, fmt.Errorf("devices[%d]: store: nil device", i)
		}
	}
	now := s.clock()
	b := newBatch(ds, now)
	// Preparing (validation, JSON, hashing) and looking up which devices
	// exist already run on other goroutines, chunk by chunk, while this one
	// writes the chunks that are ready: the write transaction, which SQLite
	// serialises, carries nothing but writes.
	p := b.start(ctx, s, actor, now)
	defer p.halt()

	start := time.Now()
	var waited time.Duration // for chunks to be prepared
	attempt := 1
	for ; ; attempt++ {
		inserted = make([]bool, len(ds))
		err = s.inTx(ctx, func(t *txn) error {
			var inTx map[devKey]*fleet.Device
			if attempt > 1 {
				// The lookups outside the transaction missed a concurrent
				// insert; look again where no insert can slip in between.
				var err error
				if inTx, err = findByKeys(ctx, t.query, b.keys); err != nil {
					return err
				}
			}
			for c := range p.ready {
				t0 := time.Now()
				nds, found, err := p.wait(ctx, c)
				waited += time.Since(t0)
				if err != nil {
					return err
				}
				if inTx != nil {
					found = inTx
				}
				lo := p.bounds[c]
				fresh := make([]*newDevice, 0, len(nds))
				for j, nd := range nds {
					i := lo + j
					if b.firstOf[i] != i {
						continue
					}
					if stored := found[keyOf(ds[i])]; stored != nil {
						b.stored[i] = stored
						continue
					}
					fresh = append(fresh, nd)
					inserted[i] = true
				}
				if err := insertNew(ctx, t, fresh); err != nil {
					return err
				}
			}
			if after == nil {
				return nil
			}
			created := make([]*fleet.Device, len(ds))
			for i, ok := range inserted {
				if ok {
					created[i] = p.nds[i].rec.dev
				}
			}
			return after(ctx, t, created)
		})
		if err == nil {
			break
		}
		if !s.d.isUniqueViolation(err) {
			return nil, err
		}
		if attempt == maxBatchRetries {
			return nil, fmt.Errorf("store: a device of the batch has an id or factory/model/serial that is already taken: %w", ErrDuplicate)
		}
		s.log.DebugContext(ctx, "store: batch collided with a concurrent writer; retrying", "attempt", attempt)
	}

	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.DebugContext(ctx, "store: devices batch written", "devices", len(ds), "inserted", count(inserted),
			"attempts", attempt, "elapsed", time.Since(start), "waitedForPreparation", waited)
	}
	for i := range ds {
		first := b.firstOf[i]
		src := b.stored[first]
		if inserted[first] {
			src = p.nds[first].rec.dev
		}
		if first != i {
			// A repeated entry gets its own copy, not an alias of the first.
			if src, err = cloneDevice(src); err != nil {
				return nil, err
			}
		}
		*ds[i] = *src
	}
	return inserted, nil
}

// batch is the bookkeeping of one CreateDevices call.
type batch struct {
	ds []*fleet.Device
	// firstOf[i] is the index of the first entry with ds[i]'s key.
	firstOf []int
	// keys are the distinct keys a database can hold; the others fail
	// validation.
	keys []devKey
	// stored[i] is the already registered device of first entry i.
	stored []*fleet.Device
	// ids[i] is the id entry i gets if it has none. They ascend with i, so
	// the batch appends to every index that ends in the device id instead
	// of inserting all over it.
	ids []string
}

func newBatch(ds []*fleet.Device, now time.Time) *batch {
	b := &batch{ds: ds, firstOf: make([]int, len(ds)), stored: make([]*fleet.Device, len(ds)), ids: make([]string, len(ds))}
	for i := range b.ids {
		b.ids[i] = fleet.NewID("dev_", now)
	}
	slices.Sort(b.ids)
	seen := make(map[devKey]int, len(ds))
	for i, d := range ds {
		k := keyOf(d) // preparing does not change a key
		if j, dup := seen[k]; dup {
			b.firstOf[i] = j
			continue
		}
		seen[k] = i
		b.firstOf[i] = i
		if utf8.ValidString(k.factory + k.model + k.serial) {
			b.keys = append(b.keys, k)
		}
	}
	return b
}

// preparer prepares a batch chunk by chunk on background goroutines and
// looks up which of each chunk's devices are registered already.
type preparer struct {
	// bounds delimit the chunks (see chunkBounds).
	bounds []int
	nds    []*newDevice
	errs   []error
	// found[c] are chunk c's devices registered already; lookupErr[c] is
	// why they could not be looked up.
	found     []map[devKey]*fleet.Device
	lookupErr []error
	ready     []chan struct{} // ready[c] is closed once chunk c is done
	stop      chan struct{}
	once      sync.Once
}

func (b *batch) start(ctx context.Context, s *Store, actor string, now time.Time) *preparer {
	n := len(b.ds)
	bounds := chunkBounds(n)
	chunks := len(bounds) - 1
	p := &preparer{
		bounds:    bounds,
		nds:       make([]*newDevice, n),
		errs:      make([]error, n),
		found:     make([]map[devKey]*fleet.Device, chunks),
		lookupErr: make([]error, chunks),
		ready:     make([]chan struct{}, chunks),
		stop:      make(chan struct{}),
	}
	for c := range p.ready {
		p.ready[c] = make(chan struct{})
	}
	// Chunks are claimed in order, so the writer rarely waits for a chunk
	// behind one that is still being prepared.
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), chunks) {
		go func() {
			boms := bomCache{}
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				select {
				case <-p.stop:
					return
				default:
				}
				lo, hi := bounds[c], bounds[c+1]
				var keys []devKey
				for i := lo; i < hi; i++ {
					p.nds[i], p.errs[i] = prepareNew(b.ds[i], b.ids[i], actor, now, boms)
					if k := keyOf(b.ds[i]); b.firstOf[i] == i && p.errs[i] == nil {
						keys = append(keys, k)
					}
				}
				p.found[c], p.lookupErr[c] = findByKeys(ctx, s.query, keys)
				close(p.ready[c])
			}
		}()
	}
	return p
}

// wait returns chunk c once it is prepared, with its registered devices, or
// the error of its first invalid device. Earlier chunks were valid, so that
// is the batch's first.
func (p *preparer) wait(ctx context.Context, c int) ([]*newDevice, map[devKey]*fleet.Device, error) {
	select {
	case <-p.ready[c]:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	lo, hi := p.bounds[c], p.bounds[c+1]
	for i := lo; i < hi; i++ {
		if p.errs[i] != nil {
			return nil, nil, fmt.Errorf("devices[%d]: %w", i, p.errs[i])
		}
	}
	if err := p.lookupErr[c]; err != nil {
		return nil, nil, err
	}
	return p.nds[lo:hi], p.found[c], nil
}

// halt stops the workers from starting further chunks.
func (p *preparer) halt() { p.once.Do(func() { close(p.stop) }) }

// cloneDevice returns a deep copy of d.
func cloneDevice(d *fleet.Device) (*fleet.Device, error) {
	r, err := newRecord(d, nil)
	if err != nil {
		return nil, err
	}
	return r.decode()
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
