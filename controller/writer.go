package controller

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// backgroundWriter writes the generations of runtime-only passes after
// HAProxy already serves them, so that writing (an fsync per changed file)
// never delays the next change. Only the newest pending generation is
// written: the ones before it are superseded. A crash before the write
// leaves the last complete generation current, which a restarted sidecar
// reloads HAProxy from before it serves anything else.
//
// Writes are spaced (spacing, from the end of one to the start of the
// next): under a burst of runtime passes (a rolling update moving
// endpoints, or one change after another) the files of many passes are
// written once. A write reads every file (to hash it) and writes the
// changed ones with an fsync each (at 50k Ingresses a route map is 5 MB,
// haproxy.cfg 3 to 12 MB); after every pass, that took CPU the passes
// needed (see BENCHMARKS.md). What is on disk trails what HAProxy serves
// by at most the spacing and a write.
//
// A pass that writes by itself (a reload, which validates first) calls
// settle first.
type backgroundWriter struct {
	store *reload.Store
	log   *zap.Logger
	// spacing is the least time from the end of a write to the start of
	// the next (writeSpacing).
	spacing time.Duration
	// failed and written report a write's outcome to the controller.
	failed  func(error)
	written func(generation int)

	mu   sync.Mutex
	idle *sync.Cond
	// pending makes the files to write (cheap: haproxy.cfg and the route
	// maps are written from their pieces, never put together).
	pending func() reload.Contents
	busy    bool
	kick    chan struct{}
	retry   *time.Timer
}

// writeSpacing is backgroundWriter.spacing.
const writeSpacing = 500 * time.Millisecond

func newBackgroundWriter(store *reload.Store, log *zap.Logger, failed func(error), written func(int)) *backgroundWriter {
	w := &backgroundWriter{store: store, log: log, spacing: writeSpacing, failed: failed, written: written, kick: make(chan struct{}, 1)}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// submit queues files to be written, replacing any not written yet.
func (w *backgroundWriter) submit(files func() reload.Contents) {
	w.mu.Lock()
	w.pending = files
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// settle is for a pass about to write a generation itself: it writes
// what is pending (HAProxy serves it, so if the pass's candidate is then
// refused, the disk still holds what runs), waits for a write in
// progress, and drops whatever is still pending (a failed write would
// otherwise be retried over the pass's newer one).
func (w *backgroundWriter) settle(ctx context.Context) {
	w.writeOne(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy {
		w.idle.Wait()
	}
	w.pending = nil
}

// run writes until ctx is done, then writes what is still pending, so
// that a sidecar stopped normally leaves the files HAProxy serves.
func (w *backgroundWriter) run(ctx context.Context) {
	backoff := time.Duration(0)
	var last time.Time // when the last write ended
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			w.writeOne(final)
			cancel()
			return
		case <-w.kick:
		}
		if wait := time.Until(last.Add(w.spacing)); wait > 0 {
			// Newer files may replace these meanwhile: one write for
			// all of them.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				continue // written above, on the way out
			case <-t.C:
			}
		}
		ok := w.writeOne(ctx)
		last = time.Now()
		if ok {
			backoff = 0
			continue
		}
		// Failed: try again later, unless newer files replace these.
		backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		w.mu.Lock()
		if w.retry != nil {
			w.retry.Stop()
		}
		w.retry = time.AfterFunc(backoff, func() {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		})
		w.mu.Unlock()
	}
}

// writeOne writes the pending files, if any; false when that failed (the
// files stay pending unless newer ones came meanwhile).
func (w *backgroundWriter) writeOne(ctx context.Context) bool {
	w.mu.Lock()
	files := w.pending
	w.pending = nil
	if files == nil {
		w.mu.Unlock()
		return true
	}
	w.busy = true
	w.mu.Unlock()

	// HAProxy accepted these through its runtime API, and they differ
	// from the validated current generation only in map entries and
	// server addresses: no haproxy -c.
	res, err := w.store.ApplyContents(ctx, files(), func(string) error { return nil })

	w.mu.Lock()
	w.busy = false
	if err != nil && w.pending == nil {
		w.pending = files
	}
	w.idle.Broadcast()
	w.mu.Unlock()
	if err != nil {
		w.log.Error("writing the configuration HAProxy serves failed; will retry", zap.Error(err))
		w.failed(err)
		return false
	}
	w.log.Debug("configuration written", zap.Int("generation", res.Generation))
	w.written(res.Generation)
	return true
}
