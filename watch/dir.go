// Package watch turns changes of files on disk into notifications for the
// render loop.
package watch

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Dir watches a file or a directory tree and calls Notify after anything in
// it changes: files created, written, renamed or removed, editors that
// replace a file by renaming a new one over it, Kubernetes ConfigMap volumes
// that swap a "..data" symlink, and a path that does not exist yet (its
// nearest existing parent is watched until it appears).
type Dir struct {
	Path   string
	Notify func()
	Log    *zap.Logger
	// Rescan is how often the watch set is checked even without events, as
	// a safety net for events a file system does not deliver (e.g. some
	// network mounts). Zero means 30 seconds.
	Rescan time.Duration
	// Settle, when set, holds Notify back until nothing has changed for
	// this long: each change starts the wait again, so a file written in
	// steps is notified once, complete. Zero notifies at each change.
	Settle time.Duration
}

// Run watches until ctx is done.
func (d *Dir) Run(ctx context.Context) error {
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", d.Path, err)
	}
	defer w.Close()

	notify, stop := d.settled()
	defer stop()

	rescan := d.Rescan
	if rescan == 0 {
		rescan = 30 * time.Second
	}
	ticker := time.NewTicker(rescan)
	defer ticker.Stop()

	watched := map[string]bool{}
	// sync makes the watch set match the file system and says whether it
	// grew. It repeats until nothing new appears: a directory can be
	// created (mkdir -p, a tool writing a tree) after its parent appeared
	// but before the parent was watched, and would otherwise never be.
	// Files in a newly watched directory may predate its watch, so growth
	// counts as a change.
	sync := func() (grew bool) {
		for range 100 {
			want := d.watchSet()
			for p := range watched {
				if !want[p] {
					_ = w.Remove(p)
					delete(watched, p)
				}
			}
			added := false
			for p := range want {
				if watched[p] {
					continue
				}
				if err := w.Add(p); err != nil {
					log.Debug("cannot watch", zap.String("path", p), zap.Error(err))
					continue
				}
				watched[p], added = true, true
			}
			if !added {
				return grew
			}
			grew = true
		}
		return grew
	}
	sync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// A new directory, or the watched path appearing, changes
			// what has to be watched.
			if grew := sync(); grew || d.relevant(ev.Name) {
				log.Debug("change", zap.String("path", ev.Name), zap.String("op", ev.Op.String()))
				notify()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow means events were lost: assume a change.
			log.Warn("file watch error; re-reading", zap.String("path", d.Path), zap.Error(err))
			sync()
			notify()
		case <-ticker.C:
			if sync() {
				notify()
			}
		}
	}
}

// settled returns Notify, or with Settle a call that schedules Notify for
// when Settle has passed without another call; stop drops one scheduled.
// Both are called from Run's goroutine only.
func (d *Dir) settled() (notify, stop func()) {
	if d.Settle <= 0 {
		return d.Notify, func() {}
	}
	var t *time.Timer
	notify = func() {
		if t == nil {
			t = time.AfterFunc(d.Settle, d.Notify)
		} else {
			t.Reset(d.Settle)
		}
	}
	return notify, func() {
		if t != nil {
			t.Stop()
		}
	}
}

// watchSet is every directory to watch: the tree under Path when it is a
// directory, its parent when it is a file, the nearest existing ancestor
// when it does not exist.
func (d *Dir) watchSet() map[string]bool {
	set := map[string]bool{}
	st, err := os.Stat(d.Path)
	switch {
	case err == nil && st.IsDir():
		_ = filepath.WalkDir(d.Path, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() {
				set[p] = true
			}
			return nil
		})
	case err == nil:
		set[filepath.Dir(d.Path)] = true
	default:
		for p := filepath.Dir(filepath.Clean(d.Path)); ; p = filepath.Dir(p) {
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				set[p] = true
				break
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return set
}

// relevant filters events from directories watched only because they hold
// the path (its parent or an ancestor).
func (d *Dir) relevant(name string) bool {
	clean := filepath.Clean(d.Path)
	rel, err := filepath.Rel(clean, name)
	if err == nil && !startsWithDotDot(rel) {
		return true // inside the path, or the path itself
	}
	// An ancestor on the way to a path that does not exist yet.
	rel, err = filepath.Rel(name, clean)
	return err == nil && !startsWithDotDot(rel)
}

func startsWithDotDot(rel string) bool {
	return rel == ".." || len(rel) > 2 && rel[:3] == ".."+string(filepath.Separator)
}
