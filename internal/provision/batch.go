package provision

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// maxBatch bounds the commits one transaction carries.
const maxBatch = 128

// batchTimeout bounds one group commit; it does not follow any one
// request's context, since it carries other devices' commits too.
const batchTimeout = 30 * time.Second

// batcher groups concurrent commits into one store transaction, so that
// under load a transaction, a WAL append and (on PostgreSQL) an fsync are
// paid per batch instead of per device. A committer goroutine runs while
// commits are queued and exits when the queue is empty, so an idle
// pipeline holds no goroutine; callers wait only for their own commit.
type batcher struct {
	st      Store
	mu      sync.Mutex
	queue   []*commitJob
	running bool
}

type commitJob struct {
	c    *store.ProvisioningCommit
	dev  *fleet.Device
	err  error
	done chan struct{}
}

// commit writes c with whatever other commits are waiting.
func (b *batcher) commit(ctx context.Context, c *store.ProvisioningCommit) (*fleet.Device, error) {
	job := &commitJob{c: c, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, job)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case <-job.done:
		return job.dev, job.err
	case <-ctx.Done():
		// The commit may still land; an idempotent retry finds it.
		return nil, ctx.Err()
	}
}

// loop commits batches until the queue is empty.
func (b *batcher) loop() {
	for {
		// Let the goroutines that are about to queue a commit do so
		// before the batch is cut. On a busy machine the requests that
		// finish while a batch commits are runnable but not yet queued;
		// without this yield batches average under two commits, with it
		// several, and the pages they share (index leaves, the newest
		// table pages) go to the WAL once per batch, not per device. On
		// an idle machine nothing else is runnable and it returns at once,
		// so a lone commit does not wait.
		runtime.Gosched()
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), maxBatch)
		batch := make([]*commitJob, n)
		copy(batch, b.queue)
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.run(batch)
	}
}

func (b *batcher) run(batch []*commitJob) {
	// The batch carries many devices' commits, so no one request's
	// context may cancel it.
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	cs := make([]*store.ProvisioningCommit, len(batch))
	for i, j := range batch {
		cs[i] = j.c
	}
	devs, errs, err := b.st.CommitProvisionings(ctx, cs)
	for i, j := range batch {
		if err != nil {
			j.err = err
		} else {
			j.dev, j.err = devs[i], errs[i]
		}
		close(j.done)
	}
}
