package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func readLink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFilesValidate(t *testing.T) {
	ok := Files{"haproxy.cfg": nil, "maps/a.map": nil, "certs/x/y.pem": nil}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "/abs", "../up", "a/../b", "a//b", "./a", "maps/.hidden", `a\b`, "a/"} {
		f := Files{"haproxy.cfg": nil, name: nil}
		if err := f.Validate(); err == nil {
			t.Errorf("%q: want error", name)
		}
	}
	if err := (Files{"maps/a.map": nil}).Validate(); err == nil {
		t.Error("missing haproxy.cfg: want error")
	}
	if err := (Files{"haproxy.cfg": nil, "maps": nil, "maps/a.map": nil}).Validate(); err == nil {
		t.Error("file/dir clash: want error")
	}
}

func TestStoreApply(t *testing.T) {
	hb := haproxyBins(t)[0]
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	validate := Validator(ctx, hb.path, 0)

	if _, err := s.Current(); !errors.Is(err, ErrNoCurrent) {
		t.Fatalf("empty store: Current() = %v, want ErrNoCurrent", err)
	}

	v1 := Files{"haproxy.cfg": []byte(routeConfig(freePort(t), "1")), "maps/exact.map": []byte("a.example a1\n")}
	r, err := s.Apply(ctx, v1, validate)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed || r.Generation != 1 || r.Dir != filepath.Join(s.Dir(), "gen-1") {
		t.Fatalf("first apply: %+v", r)
	}
	if got := readLink(t, filepath.Join(dir, "current")); got != "gen-1" {
		t.Fatalf("current -> %q (want relative gen-1)", got)
	}
	if b, err := os.ReadFile(s.ConfigPath()); err != nil || string(b) != string(v1["haproxy.cfg"]) {
		t.Fatalf("ConfigPath content: %v", err)
	}

	// Identical bytes: nothing written, validate not even called.
	r, err = s.Apply(ctx, v1, func(string) error { t.Fatal("validate called for unchanged files"); return nil })
	if err != nil || r.Changed || r.Generation != 1 {
		t.Fatalf("unchanged apply: %+v %v", r, err)
	}

	// Changed map only -> new generation, previous kept.
	v2 := Files{"haproxy.cfg": v1["haproxy.cfg"], "maps/exact.map": []byte("a.example a2\n")}
	r, err = s.Apply(ctx, v2, validate)
	if err != nil || !r.Changed || r.Generation != 2 {
		t.Fatalf("second apply: %+v %v", r, err)
	}
	if got := readLink(t, filepath.Join(dir, "previous")); got != "gen-1" {
		t.Fatalf("previous -> %q", got)
	}
	cur, err := s.Current()
	if err != nil || !cur.Equal(v2) {
		t.Fatalf("Current() = %v %v, want v2", cur.Names(), err)
	}

	// A removed file is a change too.
	v3 := Files{"haproxy.cfg": []byte(baseConfig + "frontend fe\n    bind 127.0.0.1:" + strconv.Itoa(freePort(t)) +
		"\n    http-request return status 200\n# no map any more\n")}
	if r, err = s.Apply(ctx, v3, validate); err != nil || !r.Changed || r.Generation != 3 {
		t.Fatalf("third apply: %+v %v", r, err)
	}
	// Only current and previous survive.
	if got := dirNames(t, dir); !slices.Equal(got, []string{"current", "gen-2", "gen-3", "previous"}) {
		t.Fatalf("dir after 3 applies: %v", got)
	}

	// Invalid candidate: HAProxy rejects it, current stays, candidate kept as rejected/.
	bad := Files{"haproxy.cfg": []byte(baseConfig + "frontend fe\n    bogus_keyword\n")}
	r, err = s.Apply(ctx, bad, validate)
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("invalid apply: want *CheckError, got %v", err)
	}
	if r.Changed || r.Generation != 3 {
		t.Fatalf("invalid apply result: %+v", r)
	}
	if a := ce.Alerts(); len(a) == 0 || a[0].Location != (Location{"haproxy.cfg", 9}) {
		t.Fatalf("invalid apply diagnostics: %+v", ce.Diagnostics)
	}
	if got := readLink(t, filepath.Join(dir, "current")); got != "gen-3" {
		t.Fatalf("current moved to %q after invalid apply", got)
	}
	if cur, _ := s.Current(); !cur.Equal(v3) {
		t.Fatal("current content changed after invalid apply")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rejected", "haproxy.cfg")); err != nil || string(b) != string(bad["haproxy.cfg"]) {
		t.Fatalf("rejected/ not kept: %v", err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"current", "gen-2", "gen-3", "previous", "rejected"}) {
		t.Fatalf("dir after invalid apply: %v", got)
	}

	// A canceled context during validation must not switch.
	cctx, cancel := context.WithCancel(ctx)
	v4 := Files{"haproxy.cfg": []byte(routeConfig(freePort(t), "4"))}
	_, err = s.Apply(cctx, v4, func(string) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled apply: %v", err)
	}
	if g, _ := s.CurrentGeneration(); g != 3 {
		t.Fatalf("canceled apply switched to %d", g)
	}

	// Invalid names are refused before anything is written.
	if _, err := s.Apply(ctx, Files{"haproxy.cfg": nil, "../x": nil}, validate); err == nil {
		t.Fatal("want error for ../x")
	}

	// Reopening finds the same state.
	s2, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := s2.CurrentGeneration(); err != nil || g != 3 {
		t.Fatalf("reopened: gen %d %v", g, err)
	}
	r, err = s2.Apply(ctx, v1, validate)
	if err != nil || r.Generation != 4 {
		t.Fatalf("apply after reopen: %+v %v", r, err)
	}
}

func TestStoreBootstrap(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	minimal := Files{"haproxy.cfg": []byte(baseConfig)}
	r, err := s.Bootstrap(minimal)
	if err != nil || !r.Changed || r.Generation != 1 {
		t.Fatalf("bootstrap: %+v %v", r, err)
	}
	// With a live generation, Bootstrap keeps it (e.g. after a sidecar restart).
	other := Files{"haproxy.cfg": []byte(baseConfig + "# other\n")}
	r, err = s.Bootstrap(other)
	if err != nil || r.Changed || r.Generation != 1 {
		t.Fatalf("second bootstrap: %+v %v", r, err)
	}
	if cur, _ := s.Current(); !cur.Equal(minimal) {
		t.Fatal("second bootstrap overwrote current")
	}
}

// A process that died mid-write leaves a partial temporary directory, or a
// complete generation that never became current. Neither may become current;
// both are removed when the store is opened again.
func TestStoreCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := Files{"haproxy.cfg": []byte(baseConfig + "# good\n")}
	if _, err := s.Apply(ctx, good, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Simulated crashes: a half-written candidate, an unreferenced generation
	// (written and renamed but never validated/switched), a stray temp symlink.
	partial := filepath.Join(dir, ".tmp-gen-2")
	writeFiles(t, partial, Files{"maps/a.map": []byte("half")})
	writeFiles(t, filepath.Join(dir, "gen-7"), Files{"haproxy.cfg": []byte("never validated")})
	if err := os.Symlink("gen-7", filepath.Join(dir, ".tmp-current")); err != nil {
		t.Fatal(err)
	}

	s2, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"current", "gen-1"}) {
		t.Fatalf("leftovers not cleaned: %v", got)
	}
	if cur, err := s2.Current(); err != nil || !cur.Equal(good) {
		t.Fatalf("current after crash: %v %v", cur.Names(), err)
	}

	// Leftovers appearing while the store is open (e.g. a second crashed writer
	// before this one) are cleaned on the next Apply and never picked up.
	writeFiles(t, filepath.Join(dir, "gen-5"), Files{"haproxy.cfg": []byte("stale")})
	next := Files{"haproxy.cfg": []byte(baseConfig + "# next\n")}
	var validated string
	r, err := s2.Apply(ctx, next, func(d string) error { validated = d; return nil })
	if err != nil || !r.Changed {
		t.Fatalf("apply: %+v %v", r, err)
	}
	// Validated under its temporary name, then renamed into place.
	if filepath.Base(validated) != ".tmp-"+filepath.Base(r.Dir) {
		t.Fatalf("validated %s but activated %s", validated, r.Dir)
	}
	if cur, _ := s2.Current(); !cur.Equal(next) {
		t.Fatal("current is not the applied files")
	}
	if got := dirNames(t, dir); slices.Contains(got, "gen-5") {
		t.Fatalf("stale gen-5 kept: %v", got)
	}
}

// A current link that is missing, dangling or replaced by something else
// is restored from the newest generation, never from a candidate that
// was not validated, and generations are never pruned while it is
// missing: the restart after `rm current` serves what was served.
func TestStoreRepair(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	nop := func(string) error { return nil }
	v1 := Files{"haproxy.cfg": []byte(baseConfig + "# 1\n")}
	v2 := Files{"haproxy.cfg": []byte(baseConfig + "# 2\n")}
	for _, f := range []Files{v1, v2} {
		if _, err := s.Apply(ctx, f, nop); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.Repair(); r != nil || err != nil {
		t.Fatalf("repair of a sound store: %v %v", r, err)
	}
	current := filepath.Join(dir, "current")
	for name, breakIt := range map[string]func() error{
		"removed":  func() error { return os.Remove(current) },
		"dangling": func() error { os.Remove(current); return os.Symlink("gen-99", current) },
		"a directory": func() error {
			os.Remove(current)
			return os.MkdirAll(filepath.Join(current, "x"), 0o755)
		},
		"a file": func() error { os.Remove(current); return os.WriteFile(current, []byte("x"), 0o644) },
	} {
		if err := breakIt(); err != nil {
			t.Fatal(err)
		}
		// A crash in the middle of validating a candidate leaves it
		// under its temporary name: never a repair target.
		writeFiles(t, filepath.Join(dir, ".tmp-gen-50"), Files{"haproxy.cfg": []byte("unvalidated")})
		// Reopening (a sidecar restart) repairs before it prunes.
		s, err := NewStore(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cur, err := s.Current(); err != nil || !cur.Equal(v2) {
			t.Fatalf("%s: current after reopening: %v %v", name, cur.Names(), err)
		}
		if r := s.LastRepair(); r == nil || r.Generation != 2 || !strings.Contains(r.String(), "restored current to gen-2") {
			t.Errorf("%s: LastRepair %v", name, r)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{"current", "gen-1", "gen-2", "previous"}) {
			t.Errorf("%s: entries %v", name, got)
		}
	}
	// Repair without reopening (before HAProxy is restarted), and Apply
	// with current missing keeps the chain.
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	v3 := Files{"haproxy.cfg": []byte(baseConfig + "# 3\n")}
	if r, err := s.Apply(ctx, v3, nop); err != nil || r.Generation != 3 {
		t.Fatalf("apply with current missing: %+v %v", r, err)
	}
	if got := readLink(t, filepath.Join(dir, "previous")); got != "gen-2" {
		t.Errorf("previous -> %s, want gen-2", got)
	}
}

// Unchanged files are hard-linked from the live generation, not written
// again; a file edited by hand in the live generation is not trusted.
func TestStoreLinksUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	nop := func(string) error { return nil }
	cert := []byte("-----BEGIN CERTIFICATE-----\nunchanged\n-----END CERTIFICATE-----\n")
	v1 := Files{"haproxy.cfg": []byte(baseConfig + "# 1\n"), "certs/a.pem": cert}
	v2 := Files{"haproxy.cfg": []byte(baseConfig + "# 2\n"), "certs/a.pem": cert}
	r1, err := s.Apply(ctx, v1, nop)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Apply(ctx, v2, nop)
	if err != nil {
		t.Fatal(err)
	}
	stat := func(gen string, name string) os.FileInfo {
		t.Helper()
		st, err := os.Stat(filepath.Join(gen, name))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if !os.SameFile(stat(r1.Dir, "certs/a.pem"), stat(r2.Dir, "certs/a.pem")) {
		t.Error("an unchanged file was written again instead of linked")
	}
	if os.SameFile(stat(r1.Dir, "haproxy.cfg"), stat(r2.Dir, "haproxy.cfg")) {
		t.Error("a changed file was linked")
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v2) {
		t.Fatalf("current: %v %v", cur.Names(), err)
	}

	// A hand edit of the live generation (another size) is noticed: the
	// same files are then written again rather than declared unchanged.
	if err := os.Remove(filepath.Join(r2.Dir, "haproxy.cfg")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r2.Dir, "haproxy.cfg"), []byte("edited by hand\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	r3, err := s.Apply(ctx, v2, nop)
	if err != nil || !r3.Changed {
		t.Fatalf("apply after a hand edit: %+v %v", r3, err)
	}
	if cur, _ := s.Current(); !cur.Equal(v2) {
		t.Error("the hand-edited file stayed live")
	}
}

// Stage makes a generation current before a reload validates it; Confirm
// and Rollback end that, and a crash in between (the store opened again
// with the pending link) puts the previous generation back.
func TestStoreStage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := func(n int) Files {
		return Files{"haproxy.cfg": []byte(baseConfig + "# " + strconv.Itoa(n) + "\n"), "maps/a.map": []byte("a " + strconv.Itoa(n) + "\n")}
	}
	if _, err := s.Stage(ctx, v(1)); !errors.Is(err, ErrNoCurrent) {
		t.Fatalf("Stage with nothing to go back to: %v, want ErrNoCurrent", err)
	}
	if _, err := s.Bootstrap(v(1)); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(dir, "pending")

	// Unchanged: nothing staged.
	if r, err := s.Stage(ctx, v(1)); err != nil || r.Changed || r.Generation != 1 {
		t.Fatalf("Stage of the current files: %+v %v", r, err)
	}
	if _, err := os.Lstat(pending); err == nil {
		t.Fatal("pending link for an unchanged Stage")
	}

	// Confirmed.
	r, err := s.Stage(ctx, v(2))
	if err != nil || !r.Changed || r.Generation != 2 {
		t.Fatalf("Stage v2: %+v %v", r, err)
	}
	if got := readLink(t, pending); got != "gen-2" {
		t.Fatalf("pending -> %s", got)
	}
	if got := readLink(t, filepath.Join(dir, "current")); got != "gen-2" {
		t.Fatalf("current -> %s while staged", got)
	}
	if err := s.Confirm(2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(pending); err == nil {
		t.Fatal("pending link after Confirm")
	}
	if err := s.Confirm(2); err == nil {
		t.Error("a second Confirm: want an error")
	}

	// Rolled back: v2 current again, v3 kept as rejected/.
	r, err = s.Stage(ctx, v(3))
	if err != nil || r.Generation != 3 {
		t.Fatalf("Stage v3: %+v %v", r, err)
	}
	rejected, restored, err := s.Rollback(3)
	if err != nil {
		t.Fatal(err)
	}
	if restored != 2 {
		t.Errorf("Rollback says generation %d is current, want 2", restored)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v(2)) {
		t.Fatalf("current after Rollback: %v %v", cur.Names(), err)
	}
	if got, err := readGen(rejected); err != nil || !got.Equal(v(3)) {
		t.Errorf("rejected %s: %v %v", rejected, got.Names(), err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"current", "gen-2", "previous", "rejected"}) {
		t.Errorf("entries after Rollback: %v", got)
	}
	// The rolled-back generation is not what the next Apply compares with.
	if r, err := s.Apply(ctx, v(2), func(string) error { t.Error("v2 validated again"); return nil }); err != nil || r.Changed {
		t.Errorf("Apply of the current v2 after Rollback: %+v %v", r, err)
	}

	// A crash between Stage and Confirm: reopened, current is v2 again.
	r, err = s.Stage(ctx, v(4))
	if err != nil {
		t.Fatal(err)
	}
	s, err = NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v(2)) {
		t.Fatalf("current after a crash while staged: %v %v", cur.Names(), err)
	}
	staged := "gen-" + strconv.Itoa(r.Generation)
	if rep := s.LastRepair(); rep == nil || rep.Generation != 2 || !strings.Contains(rep.String(), staged+", staged for a reload that never confirmed it") {
		t.Errorf("LastRepair %v", rep)
	}
	if got := dirNames(t, dir); slices.Contains(got, "pending") || slices.Contains(got, staged) {
		t.Errorf("entries after reopening: %v", got)
	}

	// A crash after the pending link was made but before the generation
	// was published: only the link and a temporary directory are left.
	if err := os.Symlink("gen-77", pending); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(dir, ".tmp-gen-77"), v(77))
	if s, err = NewStore(dir); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v(2)) {
		t.Fatalf("current after a crash before publishing: %v %v", cur.Names(), err)
	}
	if got := dirNames(t, dir); slices.Contains(got, "pending") || slices.Contains(got, ".tmp-gen-77") {
		t.Errorf("entries after a crash before publishing: %v", got)
	}
	// A staged generation is never restored as the newest complete one,
	// even when the current link is lost too.
	r, err = s.Stage(ctx, v(6))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	if s, err = NewStore(dir); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v(2)) {
		t.Fatalf("current after losing it while gen-%d was staged: %v %v", r.Generation, cur.Names(), err)
	}

	// Repair before a restart of HAProxy does the same while this store
	// still holds the staging; its Confirm then fails.
	r, err = s.Stage(ctx, v(5))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Repair(); err != nil || rep == nil || rep.Generation != 2 {
		t.Fatalf("Repair while staged: %v %v", rep, err)
	}
	if err := s.Confirm(r.Generation); err == nil {
		t.Error("Confirm after Repair put the previous generation back: want an error")
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(v(2)) {
		t.Fatalf("current: %v %v", cur.Names(), err)
	}
}

// A generation of many files (written on several goroutines) holds every
// one of them; a write that fails leaves no generation and no temporary
// directory behind, and the live one as it was.
func TestStoreManyFiles(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	nop := func(string) error { return nil }
	many := Files{"haproxy.cfg": []byte(baseConfig)}
	for i := range 3 * parallelWrites {
		many[fmt.Sprintf("certs/c%03d.pem", i)] = []byte(fmt.Sprintf("certificate %d\n", i))
	}
	r, err := s.Apply(ctx, many, nop)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(many) {
		t.Fatalf("current after writing %d files: %d files, %v", len(many), len(cur), err)
	}
	// New files, one of them with a name no file system takes: its
	// write fails among the others.
	broken := Files{"haproxy.cfg": []byte(baseConfig + "# 2\n")}
	for name, data := range many {
		if name != "haproxy.cfg" {
			broken[name+".new"] = data
		}
	}
	broken["certs/"+strings.Repeat("x", 300)+".pem"] = []byte("too long a name\n")
	if _, err := s.Apply(ctx, broken, nop); err == nil {
		t.Fatal("a generation whose writes fail was applied")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) || e.Name() == "gen-2" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if cur, err := s.Current(); err != nil || !cur.Equal(many) || readLink(t, filepath.Join(dir, "current")) != filepath.Base(r.Dir) {
		t.Errorf("the live generation changed after a failed write: %v", err)
	}
}

// newTestStore is a Store in a fresh directory.
func newTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// A generation given as Content is written from its pieces: the files on
// disk are its bytes, and the same bytes given whole are the same
// generation (the store compares sums, however the bytes come).
func TestStoreContentsInPieces(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	nop := func(string) error { return nil }
	cfg := []byte(baseConfig + strings.Repeat("# a comment line of the configuration\n", 5000))
	r1, err := s.ApplyContents(ctx, Contents{"haproxy.cfg": pieces{cfg, 7}, "maps/a.map": pieces{[]byte("a.test/ b\n"), 3}}, nop)
	if err != nil || !r1.Changed {
		t.Fatalf("apply: %+v %v", r1, err)
	}
	if got, err := os.ReadFile(filepath.Join(r1.Dir, "haproxy.cfg")); err != nil || !bytes.Equal(got, cfg) {
		t.Fatalf("haproxy.cfg on disk: %d bytes, %v; want the %d bytes written in pieces", len(got), err, len(cfg))
	}
	r2, err := s.Apply(ctx, Files{"haproxy.cfg": cfg, "maps/a.map": []byte("a.test/ b\n")}, nop)
	if err != nil || r2.Changed || r2.Generation != r1.Generation {
		t.Fatalf("the same bytes given whole: %+v %v; want generation %d unchanged", r2, err, r1.Generation)
	}
	r3, err := s.StageContents(ctx, Contents{"haproxy.cfg": pieces{cfg, 64}, "maps/a.map": pieces{[]byte("a.test/ c\n"), 1}})
	if err != nil || !r3.Changed {
		t.Fatalf("stage: %+v %v", r3, err)
	}
	if got, _ := os.ReadFile(filepath.Join(r3.Dir, "maps/a.map")); string(got) != "a.test/ c\n" {
		t.Fatalf("staged map: %q", got)
	}
}
