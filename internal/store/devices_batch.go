package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/muster-iot/muster/internal/fleet"
)

// maxBatchRetries bounds how often CreateDevices starts over after another
// writer registered one of its devices between its check and its insert.
const maxBatchRetries = 3

// batchChunk is how many devices are prepared and written together: enough
// for multi-row INSERTs and COPY to pay off, few enough that writing one
// chunk overlaps preparing the next.
const batchChunk = 1000

// CreateDevices registers many devices in one transaction: the path for
// manufacturing manifests. It is idempotent: a device whose factory, model
// and serial are already registered (or that repeats an earlier entry of ds)
// is not inserted, inserted[i] is false, and *ds[i] is overwritten with the
// stored record so the caller learns its id. Inserted devices get what
// CreateDevice assigns. A device that fails validation fails the whole call
// with an error naming its index (errors.As finds the *fleet.FieldError);
// nothing is written then.
func (s *Store) CreateDevices(ctx context.Context, ds []*fleet.Device, actor string) (inserted []bool, err error) {
	if len(ds) == 0 {
		return []bool{}, nil
	}
	for i, d := range ds {
		if d == nil {
			return nil, fmt.Errorf("devices[%d]: store: nil device", i)
		}
	}
	b := newBatch(ds)
	// Preparing (validation, JSON, hashing) and looking up which devices
	// exist already run on other goroutines, chunk by chunk, while this one
	// writes the chunks that are ready: the write transaction, which SQLite
	// serialises, carries nothing but writes.
	p := b.start(ctx, s, actor)
	defer p.halt()

	for attempt := 1; ; attempt++ {
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
				nds, found, err := p.wait(ctx, c)
				if err != nil {
					return err
				}
				if inTx != nil {
					found = inTx
				}
				lo := c * batchChunk
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
			return nil
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
}

func newBatch(ds []*fleet.Device) *batch {
	b := &batch{ds: ds, firstOf: make([]int, len(ds)), stored: make([]*fleet.Device, len(ds))}
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
	b    *batch
	nds  []*newDevice
	errs []error
	// found[c] are chunk c's devices registered already; lookupErr[c] is
	// why they could not be looked up.
	found     []map[devKey]*fleet.Device
	lookupErr []error
	ready     []chan struct{} // ready[c] is closed once chunk c is done
	stop      chan struct{}
	once      sync.Once
}

func (b *batch) start(ctx context.Context, s *Store, actor string) *preparer {
	n := len(b.ds)
	chunks := (n + batchChunk - 1) / batchChunk
	p := &preparer{
		b:         b,
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
	now := s.clock()
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
				lo, hi := c*batchChunk, min((c+1)*batchChunk, n)
				var keys []devKey
				for i := lo; i < hi; i++ {
					p.nds[i], p.errs[i] = prepareNew(b.ds[i], actor, now, boms)
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
	lo, hi := c*batchChunk, min((c+1)*batchChunk, len(p.nds))
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
