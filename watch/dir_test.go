package watch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // -update flag
)

// Every kind of change notifies, including on a path that does not exist
// when watching starts and in sub-directories created later.
func TestDirNotifies(t *testing.T) {
	root := filepath.Join(t.TempDir(), "later", "manifests")
	var n atomic.Int64
	d := &Dir{Path: root, Notify: func() { n.Add(1) }, Rescan: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond) // let the watcher start

	expect := func(what string, change func()) {
		t.Helper()
		before := n.Load()
		change()
		for end := time.Now().Add(5 * time.Second); n.Load() == before; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: no notification", what)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	expect("directory created", func() { must(os.MkdirAll(root, 0o755)) })
	file := filepath.Join(root, "a.yaml")
	expect("file created", func() { must(os.WriteFile(file, []byte("a"), 0o644)) })
	expect("file written", func() { must(os.WriteFile(file, []byte("b"), 0o644)) })
	expect("file replaced by rename", func() {
		must(os.WriteFile(filepath.Join(root, ".tmp"), []byte("c"), 0o644))
		must(os.Rename(filepath.Join(root, ".tmp"), file))
	})
	sub := filepath.Join(root, "team")
	expect("sub-directory created", func() { must(os.Mkdir(sub, 0o755)) })
	time.Sleep(50 * time.Millisecond) // its watch is added on that event
	expect("file in the sub-directory", func() { must(os.WriteFile(filepath.Join(sub, "b.yaml"), []byte("x"), 0o644)) })
	expect("file removed", func() { must(os.Remove(file)) })

	// Unrelated changes beside the watched directory do not notify.
	time.Sleep(50 * time.Millisecond)
	before := n.Load()
	must(os.WriteFile(filepath.Join(filepath.Dir(root), "elsewhere.yaml"), []byte("x"), 0o644))
	time.Sleep(200 * time.Millisecond)
	if n.Load() != before {
		t.Errorf("a file beside the watched directory notified")
	}
}
