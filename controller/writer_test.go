package controller

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// files are files to submit, made when the writer writes them.
func files(cfg string) func() reload.Contents {
	return func() reload.Contents { return reload.Files{"haproxy.cfg": []byte(cfg)}.Contents() }
}

// The background writer writes the newest pending files, retries a
// failed write, writes what is pending before a pass writes by itself,
// and writes what is pending before it returns.
func TestBackgroundWriter(t *testing.T) {
	dir := t.TempDir()
	store, err := reload.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var fails, writes int
	w := newBackgroundWriter(store, zaptest.NewLogger(t),
		func(error) { mu.Lock(); fails++; mu.Unlock() },
		func(int) { mu.Lock(); writes++; mu.Unlock() })
	current := func() string {
		f, err := store.Current()
		if err != nil {
			return "(none: " + err.Error() + ")"
		}
		return string(f["haproxy.cfg"])
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s (current %q)", what, current())
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()

	w.submit(files("one\n"))
	eventually("the first generation written", func() bool { return current() == "one\n" })

	// A write that fails (the config-dir is gone for a moment) is
	// retried and succeeds once it can; newer files replace the ones
	// waiting.
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	w.submit(files("two\n"))
	eventually("a failed write reported", func() bool { mu.Lock(); defer mu.Unlock(); return fails > 0 })
	w.submit(files("three\n"))
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	eventually("the newest files written after the failure", func() bool { return current() == "three\n" })

	// settle writes what is pending (HAProxy serves it) before a pass
	// writes a generation itself, and leaves nothing pending.
	w.mu.Lock()
	w.pending = files("pending\n") // as if submitted but not picked up yet
	w.mu.Unlock()
	w.settle(context.Background())
	w.mu.Lock()
	left := w.pending
	w.mu.Unlock()
	if got := current(); left != nil || got != "pending\n" {
		t.Errorf("after settle: pending left %v, current %q, want pending written", left != nil, got)
	}

	// What is pending when run stops is written before it returns.
	w.mu.Lock()
	w.pending = files("last\n")
	w.mu.Unlock()
	cancel()
	<-done
	if got := current(); got != "last\n" {
		t.Errorf("after stop: current %q, want last", got)
	}
	if errors.Is(ctx.Err(), context.Canceled) && writes < 3 {
		t.Errorf("%d writes reported, want at least 3", writes)
	}
}

// Writes are spaced: the first after a quiet spell is written at once,
// files submitted within the spacing after it wait and are written as one
// (the newest), and neither settle nor stopping waits for the spacing.
func TestBackgroundWriterSpacing(t *testing.T) {
	store, err := reload.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var written []int
	w := newBackgroundWriter(store, zaptest.NewLogger(t), func(err error) { t.Errorf("write failed: %v", err) },
		func(gen int) { mu.Lock(); written = append(written, gen); mu.Unlock() })
	w.spacing = time.Hour
	writes := func() int { mu.Lock(); defer mu.Unlock(); return len(written) }
	current := func() string {
		f, err := store.Current()
		if err != nil {
			return "(none: " + err.Error() + ")"
		}
		return string(f["haproxy.cfg"])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()

	w.submit(files("one\n"))
	for deadline := time.Now().Add(10 * time.Second); current() != "one\n"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first files were not written within 10s (current %q)", current())
		}
	}
	w.submit(files("two\n"))
	w.submit(files("three\n"))
	time.Sleep(200 * time.Millisecond) // long enough for a write that is not spaced
	if got, n := current(), writes(); got != "one\n" || n != 1 {
		t.Errorf("within the spacing: current %q after %d writes, want one after 1", got, n)
	}
	w.settle(context.Background())
	if got, n := current(), writes(); got != "three\n" || n != 2 {
		t.Errorf("after settle: current %q after %d writes, want three (the newest) after 2", got, n)
	}
	w.submit(files("four\n"))
	cancel()
	<-done
	if got, n := current(), writes(); got != "four\n" || n != 3 {
		t.Errorf("after stop: current %q after %d writes, want four after 3", got, n)
	}
}
