package watch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// With Settle, a file written in steps notifies once, Settle after the
// last step, when it is complete: a half-written template is never read.
func TestDirSettle(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "haproxy.cfg.tmpl")
	const settle = 500 * time.Millisecond
	type seen struct {
		at      time.Time
		content string
	}
	notified := make(chan seen, 10)
	d := &Dir{Path: root, Rescan: time.Hour, Settle: settle, Notify: func() {
		b, _ := os.ReadFile(file)
		notified <- seen{time.Now(), string(b)}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond) // let the watcher start

	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	steps := []string{"global\n", "defaults\n", "frontend fe\n", "    bind :80\n", "backend be\n"}
	var last time.Time
	for _, s := range steps {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		last = time.Now()
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var got seen
	select {
	case got = <-notified:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	if want := strings.Join(steps, ""); got.content != want {
		t.Errorf("notified with %q, want the whole file %q", got.content, want)
	}
	if d := got.at.Sub(last); d < settle {
		t.Errorf("notified %v after the last write, before the directory had been quiet for %v", d, settle)
	}
	select {
	case extra := <-notified:
		t.Errorf("a second notification for one file written in steps (%q)", extra.content)
	case <-time.After(2 * settle):
	}
}
