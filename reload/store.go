package reload

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// On-disk layout of a Store directory:
//
//	<dir>/current  -> gen-<N>   symlink to the live, validated generation
//	<dir>/previous -> gen-<M>   symlink to the generation that was live before it
//	<dir>/pending  -> gen-<N>   while current is a generation Stage made live and
//	                            its reload has not yet confirmed (see Stage)
//	<dir>/gen-<N>/haproxy.cfg   plus maps/…, certs/…, crt-list.txt, …
//	<dir>/rejected/             the last candidate that failed validation, kept for
//	                            debugging (e.g. `haproxy -c -f rejected/haproxy.cfg`)
//	<dir>/.tmp-*                in-flight writes and candidates being validated;
//	                            garbage if found at startup
//
// Symlinks are relative so the directory can be mounted at different paths in the
// sidecar and HAProxy containers.
const (
	currentLink  = "current"
	previousLink = "previous"
	pendingLink  = "pending"
	rejectedDir  = "rejected"
	genPrefix    = "gen-"
	tmpPrefix    = ".tmp-"

	// Group-readable so an HAProxy container sharing the volume through a common
	// group (Kubernetes fsGroup) can read certificates; nothing for others because
	// certs/ holds private keys.
	fileMode fs.FileMode = 0o640
	dirMode  fs.FileMode = 0o750
)

// ErrNoCurrent is returned when the store has no live generation yet.
var ErrNoCurrent = errors.New("store: no current generation")

// Store manages configuration generations in one directory, consul-template style:
// a candidate is written completely (and fsynced) into a fresh gen-<N> directory,
// validated, and only then made live by atomically replacing the "current" symlink.
// Whatever happens mid-way (invalid config, crash, power loss), "current" points at
// a complete generation that passed validation (or was written by Bootstrap), or,
// between Stage and Confirm, at one whose reload is under way: a crash then puts
// the previous generation back (Repair).
//
// A Store is safe for concurrent use by one process; two processes must not share
// a directory.
type Store struct {
	dir string
	mu  sync.Mutex
	// repaired is the last repair of the current link, for /status.
	repaired *Repair
	// live are the sums of the files of generation liveGen as this
	// Store wrote them, so that a pass neither reads the whole live
	// generation back nor rewrites unchanged files (see liveSums and
	// writeTmp). Sums, not the files: those are the renderer's, in
	// pieces, and the store holds no copy of them.
	live    sums
	liveGen int
	// seed keys the sums (fileSum).
	seed maphash.Seed
	// staged is the generation Stage made current and the one it
	// replaced, until Confirm or Rollback.
	staged *staging
}

// staging is a generation made current by Stage, not yet confirmed.
type staging struct {
	gen, prev int
	prevSums  sums // the replaced generation's, as live had them
}

// Repair describes a current link that was found missing or broken and
// pointed again at the newest complete generation.
type Repair struct {
	At         time.Time `json:"at"`
	Generation int       `json:"generation"`
	// Found is what was there instead of a link to a generation.
	Found string `json:"found"`
}

func (r Repair) String() string {
	return fmt.Sprintf("restored current to %s%d (it was %s)", genPrefix, r.Generation, r.Found)
}

// Result describes the outcome of Apply or Bootstrap.
type Result struct {
	// Changed is true when a new generation became current.
	Changed bool
	// Generation is the number of the generation that is current afterwards.
	Generation int
	// Dir is the absolute path of that generation's directory.
	Dir string
}

// NewStore opens (creating if needed) a store directory and removes leftovers of
// interrupted writes: temporary entries and generations that are neither current
// nor previous.
func NewStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", abs, err)
	}
	s := &Store{dir: abs, seed: maphash.MakeSeed()}
	// Repair before pruning: with no current link every generation would
	// look unreferenced, and the restart would come up empty.
	if _, err := s.repair(); err != nil && !errors.Is(err, ErrNoCurrent) {
		return nil, err
	}
	if err := s.prune(); err != nil {
		return nil, err
	}
	return s, nil
}

// Repair points a missing or broken current link (deleted by hand, a
// stray file in its place, its generation removed) at the newest complete
// generation, so that HAProxy can start again on the configuration it
// served. It returns nil when current was fine, and ErrNoCurrent when no
// generation is left to restore (Bootstrap then writes one).
func (s *Store) Repair() (*Repair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repair()
}

// LastRepair returns the last repair this Store made, or nil.
func (s *Store) LastRepair() *Repair {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repaired
}

func (s *Store) repair() (*Repair, error) {
	if r, err := s.dropPending(); r != nil || err != nil {
		return r, err
	}
	_, err := s.linkGen(currentLink)
	if err == nil {
		return nil, nil
	}
	found := "missing"
	if !errors.Is(err, ErrNoCurrent) {
		found = err.Error()
	}
	gen, err := s.newestComplete()
	if err != nil {
		return nil, err
	}
	if gen == 0 {
		return nil, ErrNoCurrent
	}
	link := filepath.Join(s.dir, currentLink)
	if st, err := os.Lstat(link); err == nil && st.Mode()&fs.ModeSymlink == 0 {
		// Something else took the link's place; rename(2) cannot
		// replace a directory with a link.
		if err := os.RemoveAll(link); err != nil {
			return nil, fmt.Errorf("store: remove the %s that replaced the current link: %w", st.Mode().Type(), err)
		}
	}
	if err := s.setLink(currentLink, gen); err != nil {
		return nil, err
	}
	s.repaired = &Repair{At: time.Now(), Generation: gen, Found: found}
	return s.repaired, nil
}

// newestComplete returns the highest generation holding a configuration,
// or 0. Generation directories are only ever created complete (writeGen
// renames them into place), so one holding haproxy.cfg is whole.
func (s *Store) newestComplete() (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	best := 0
	for _, e := range entries {
		n, ok := parseGen(e.Name())
		if !ok || n <= best || !e.IsDir() {
			continue
		}
		if st, err := os.Stat(filepath.Join(s.genDir(n), ConfigName)); err == nil && st.Mode().IsRegular() {
			best = n
		}
	}
	return best, nil
}

// Dir returns the store's absolute directory.
func (s *Store) Dir() string { return s.dir }

// ConfigPath is the path HAProxy must be started with (-f): it goes through the
// "current" symlink, so a reload picks up whatever generation is live.
func (s *Store) ConfigPath() string { return filepath.Join(s.dir, currentLink, ConfigName) }

// Current returns the files of the live generation, or ErrNoCurrent.
func (s *Store) Current() (Files, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := s.linkGen(currentLink)
	if err != nil {
		return nil, err
	}
	return readGen(s.genDir(gen))
}

// CurrentGeneration returns the number of the live generation, or ErrNoCurrent.
func (s *Store) CurrentGeneration() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linkGen(currentLink)
}

// Apply makes files the live generation if they differ from the current one and
// validate accepts them. validate receives the candidate's directory (it holds
// haproxy.cfg and every other file); see Validator for the usual `haproxy -c`.
//
// When the bytes are identical to the current generation nothing is written and
// Changed is false. When validate fails the current generation stays live, the
// candidate is moved to <dir>/rejected, and the validation error is returned
// wrapped (errors.As finds a *CheckError from Validator).
func (s *Store) Apply(ctx context.Context, files Files, validate func(dir string) error) (Result, error) {
	return s.commit(ctx, files.Contents(), validate, false)
}

// ApplyContents is Apply for files given as Content: each is written
// from what it is (pieces, for the renderer's large files), never put
// together.
func (s *Store) ApplyContents(ctx context.Context, files Contents, validate func(dir string) error) (Result, error) {
	return s.commit(ctx, files, validate, false)
}

// Stage writes files as a new generation and makes it current without
// validating it, for a caller that reloads HAProxy onto it next: a reload
// is a stricter check than `haproxy -c` (HAProxy loads the configuration for
// real), and one HAProxy refuses leaves the old worker serving. The caller
// then calls Confirm when the reload succeeded, or Rollback when it did
// not. Until then a "pending" link names the generation, and Repair (at
// open, and before a supervisor restarts HAProxy) puts the previous
// generation back: a crash between Stage and Confirm never leaves HAProxy a
// configuration on disk that nothing accepted.
//
// Not for configurations without a listener: `haproxy -c` refuses those,
// a reload does not (see HasListener). It returns ErrNoCurrent when there is
// no current generation to go back to; Changed is false, and nothing is
// staged, when files are the current generation's.
func (s *Store) Stage(ctx context.Context, files Files) (Result, error) {
	return s.commit(ctx, files.Contents(), nil, true)
}

// StageContents is Stage for files given as Content (see ApplyContents).
func (s *Store) StageContents(ctx context.Context, files Contents) (Result, error) {
	return s.commit(ctx, files, nil, true)
}

// commit writes files as the next generation and makes it current: after
// validate accepts it (Apply), or at once with a pending link (Stage).
func (s *Store) commit(ctx context.Context, files Contents, validate func(dir string) error, stage bool) (Result, error) {
	if err := files.Validate(); err != nil {
		return Result{}, err
	}
	next, err := sumsOf(s.seed, files)
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	if _, err := s.repair(); err != nil && !errors.Is(err, ErrNoCurrent) {
		return Result{}, err
	}
	cur, err := s.linkGen(currentLink)
	var live sums
	switch {
	case errors.Is(err, ErrNoCurrent) && !stage:
		cur = 0
	case err != nil:
		return Result{}, err
	default:
		if live, err = s.liveSums(cur); err != nil {
			return Result{}, err
		}
		if live.equal(next) {
			return Result{Generation: cur, Dir: s.genDir(cur)}, nil
		}
	}
	unchanged := Result{Generation: cur}
	if cur != 0 {
		unchanged.Dir = s.genDir(cur)
	}

	if err := s.prune(); err != nil {
		return unchanged, err
	}
	gen, err := s.nextGen()
	if err != nil {
		return unchanged, err
	}
	// Validated under its temporary name: a gen-N directory exists only
	// once it passed, so Repair never restores a candidate that failed or
	// whose validation a crash interrupted.
	tmp, err := s.writeTmp(gen, files, next, cur)
	if err != nil {
		return unchanged, err
	}
	if validate != nil {
		if err := validate(tmp); err != nil {
			s.reject(tmp)
			return unchanged, fmt.Errorf("store: generation %d rejected: %w", gen, err)
		}
	}
	// Validation can take a while (≈0.5 s at 10k backends); don't switch a caller
	// that has given up in the meantime.
	if err := ctx.Err(); err != nil {
		_ = os.RemoveAll(tmp)
		return unchanged, fmt.Errorf("store: generation %d not activated: %w", gen, err)
	}
	if stage {
		// The pending link comes before gen-N exists: a crash from here
		// on finds it, and gen-N is never taken for a validated one.
		if err := s.setLink(pendingLink, gen); err != nil {
			_ = os.RemoveAll(tmp)
			return unchanged, err
		}
	}
	dir, err := s.publish(tmp, gen)
	if err != nil {
		return unchanged, err
	}
	if err := s.activate(gen, cur); err != nil {
		return unchanged, err
	}
	if stage {
		s.staged = &staging{gen: gen, prev: cur, prevSums: live}
	}
	s.remember(gen, next)
	return Result{Changed: true, Generation: gen, Dir: dir}, nil
}

// Confirm ends the staging of gen after HAProxy took it in. It fails when
// gen is no longer current (a restart of HAProxy rolled it back meanwhile).
func (s *Store) Confirm(gen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged == nil || s.staged.gen != gen {
		return fmt.Errorf("store: generation %d is not staged", gen)
	}
	s.staged = nil
	if err := os.Remove(filepath.Join(s.dir, pendingLink)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if cur, err := s.linkGen(currentLink); err != nil || cur != gen {
		return fmt.Errorf("store: generation %d was rolled back before it was confirmed", gen)
	}
	return nil
}

// Rollback makes the generation Stage replaced current again after HAProxy
// refused gen, and keeps gen as <dir>/rejected (whose path it returns) for
// debugging and for explaining the refusal. current is the generation
// current is now (0 if it cannot be read).
func (s *Store) Rollback(gen int) (rejected string, current int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.staged
	if st == nil || st.gen != gen {
		return "", 0, fmt.Errorf("store: generation %d is not staged", gen)
	}
	s.staged = nil
	cur, cerr := s.linkGen(currentLink)
	if cerr == nil && cur == gen {
		if err := s.setLink(currentLink, st.prev); err != nil {
			return "", 0, err
		}
		s.remember(st.prev, st.prevSums)
		cur = st.prev
	} else if cerr != nil {
		cur = 0
	}
	if err := os.Remove(filepath.Join(s.dir, pendingLink)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("store: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", 0, err
	}
	s.reject(s.genDir(gen))
	return filepath.Join(s.dir, rejectedDir), cur, nil
}

// Revert makes the previous generation current again after Apply made gen
// current and HAProxy then did not take it in (a reload that never
// finished: restarted, HAProxy must not start on it). gen is kept as
// <dir>/rejected. It returns the generation current is now.
func (s *Store) Revert(gen int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.linkGen(currentLink)
	if err != nil {
		return 0, err
	}
	if cur != gen {
		return cur, fmt.Errorf("store: generation %d is not current (%d is)", gen, cur)
	}
	prev, err := s.linkGen(previousLink)
	if err != nil || prev == gen {
		return cur, fmt.Errorf("store: no previous generation to put back instead of %d", gen)
	}
	if err := s.setLink(currentLink, prev); err != nil {
		return cur, err
	}
	s.live, s.liveGen = nil, 0
	s.reject(s.genDir(gen))
	return prev, nil
}

// dropPending undoes a Stage that was neither confirmed nor rolled back:
// found at open after a crash, or when HAProxy is about to be restarted
// while its reload is under way. current goes back to the generation the
// staged one replaced.
func (s *Store) dropPending() (*Repair, error) {
	link := filepath.Join(s.dir, pendingLink)
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	s.staged = nil
	pending, _ := parseGen(target) // 0 for anything else
	cur, cerr := s.linkGen(currentLink)
	prev, preverr := s.linkGen(previousLink)
	var r *Repair
	if pending != 0 && cerr == nil && cur == pending && preverr == nil && prev != pending {
		if err := s.setLink(currentLink, prev); err != nil {
			return nil, err
		}
		s.live, s.liveGen = nil, 0
		r = &Repair{At: time.Now(), Generation: prev, Found: fmt.Sprintf("%s%d, staged for a reload that never confirmed it", genPrefix, pending)}
		s.repaired = r
		cur = prev
	}
	// Nothing accepted the staged generation: it must never be taken
	// for the newest complete one.
	if pending != 0 && pending != cur && (preverr != nil || pending != prev) {
		if err := os.RemoveAll(s.genDir(pending)); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	return r, syncDir(s.dir)
}

// Bootstrap writes files as the live generation without validation, but only when
// there is no current generation yet: a store that already has a validated config
// (e.g. after a sidecar restart) keeps it, and Changed is false.
func (s *Store) Bootstrap(files Files) (Result, error) {
	if err := files.Validate(); err != nil {
		return Result{}, err
	}
	contents := files.Contents()
	next, err := sumsOf(s.seed, contents)
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	if _, err := s.repair(); err != nil && !errors.Is(err, ErrNoCurrent) {
		return Result{}, err
	}
	cur, err := s.linkGen(currentLink)
	if err == nil {
		return Result{Generation: cur, Dir: s.genDir(cur)}, nil
	}
	if !errors.Is(err, ErrNoCurrent) {
		return Result{}, err
	}
	if err := s.prune(); err != nil {
		return Result{}, err
	}
	gen, err := s.nextGen()
	if err != nil {
		return Result{}, err
	}
	tmp, err := s.writeTmp(gen, contents, next, 0)
	if err != nil {
		return Result{}, err
	}
	dir, err := s.publish(tmp, gen)
	if err != nil {
		return Result{}, err
	}
	if err := s.activate(gen, 0); err != nil {
		return Result{}, err
	}
	s.remember(gen, next)
	return Result{Changed: true, Generation: gen, Dir: dir}, nil
}

func (s *Store) genDir(gen int) string {
	return filepath.Join(s.dir, genPrefix+strconv.Itoa(gen))
}

// linkGen resolves a symlink (current/previous) to its generation number.
func (s *Store) linkGen(link string) (int, error) {
	target, err := os.Readlink(filepath.Join(s.dir, link))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNoCurrent
	}
	if err != nil {
		return 0, fmt.Errorf("store: read %s link: %w", link, err)
	}
	gen, ok := parseGen(target)
	if !ok {
		return 0, fmt.Errorf("store: %s link points at unexpected %q", link, target)
	}
	if _, err := os.Stat(s.genDir(gen)); err != nil {
		return 0, fmt.Errorf("store: %s link target: %w", link, err)
	}
	return gen, nil
}

func parseGen(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, genPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n <= 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// nextGen returns one more than the highest generation present, so numbers only
// grow while any generation is kept (log lines naming gen-<N> stay unambiguous).
func (s *Store) nextGen() (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	highest := 0
	for _, e := range entries {
		if n, ok := parseGen(e.Name()); ok && n > highest {
			highest = n
		}
	}
	return highest + 1, nil
}

// writeTmp writes files into a temporary directory .tmp-gen-<N> and fsyncs
// every file and directory; publish then renames it to gen-<N>. A gen-<N>
// directory is therefore always complete; a crash leaves only a .tmp-*
// directory that prune removes.
//
// A file whose bytes equal the live generation's (prev) is hard-linked
// from it instead: generations are never modified once written, so both
// may share it, and at 10k Ingresses and 1k certificates a pass then writes
// and fsyncs only what changed.
func (s *Store) writeTmp(gen int, files Contents, next sums, prev int) (string, error) {
	tmp := filepath.Join(s.dir, tmpPrefix+genPrefix+strconv.Itoa(gen))
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("store: clear %s: %w", tmp, err)
	}
	if err := os.Mkdir(tmp, dirMode); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(tmp)
		return "", err
	}

	dirs := map[string]bool{tmp: true}
	var toWrite []string // names of the files not linked from prev
	for _, name := range files.Names() {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		parent := filepath.Dir(p)
		if !dirs[parent] {
			if err := os.MkdirAll(parent, dirMode); err != nil {
				return fail(fmt.Errorf("store: %w", err))
			}
			for d := parent; d != tmp; d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
		if was, ok := s.live[name]; ok && prev != 0 && s.liveGen == prev && was == next[name] {
			if err := os.Link(filepath.Join(s.genDir(prev), filepath.FromSlash(name)), p); err == nil {
				continue
			}
			// Not linkable (a file system without hard links): write it.
		}
		toWrite = append(toWrite, name)
	}
	if err := writeAllSync(tmp, toWrite, files); err != nil {
		return fail(err)
	}
	// Deepest directories first so each one's entries are durable before its parent.
	ordered := make([]string, 0, len(dirs))
	for d := range dirs {
		ordered = append(ordered, d)
	}
	sort.Slice(ordered, func(i, j int) bool { return len(ordered[i]) > len(ordered[j]) })
	for _, d := range ordered {
		if err := syncDir(d); err != nil {
			return fail(err)
		}
	}
	return tmp, nil
}

// publish renames a directory written by writeTmp to gen-<N>.
func (s *Store) publish(tmp string, gen int) (string, error) {
	final := s.genDir(gen)
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("store: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	return final, nil
}

// remember keeps next as the sums of the live generation gen.
func (s *Store) remember(gen int, next sums) {
	s.live = next
	s.liveGen = gen
}

// liveSums returns the sums of the files of the live generation cur: the
// ones kept when this Store wrote it and every file still has the size it
// wrote (a cheap check against hand edits), else the files read from disk.
func (s *Store) liveSums(cur int) (sums, error) {
	if s.liveGen == cur && s.live != nil {
		intact := true
		for name, fs := range s.live {
			st, err := os.Lstat(filepath.Join(s.genDir(cur), filepath.FromSlash(name)))
			if err != nil || !st.Mode().IsRegular() || st.Size() != fs.size {
				intact = false
				break
			}
		}
		if intact {
			return s.live, nil
		}
	}
	files, err := readGen(s.genDir(cur))
	if err != nil {
		return nil, err
	}
	live, err := sumsOf(s.seed, files.Contents())
	if err != nil {
		return nil, err
	}
	s.live, s.liveGen = live, cur
	return live, nil
}

// activate points current at gen (atomically, via rename(2) of a temporary
// symlink), then previous at prev, then prunes generations no link references.
func (s *Store) activate(gen, prev int) error {
	if err := s.setLink(currentLink, gen); err != nil {
		return err
	}
	// From here on the switch is done; the rest is bookkeeping. A crash before
	// the previous link is updated only loses the rollback copy.
	if prev != 0 && prev != gen {
		if err := s.setLink(previousLink, prev); err != nil {
			return err
		}
	}
	return s.prune()
}

func (s *Store) setLink(link string, gen int) error {
	tmp := filepath.Join(s.dir, tmpPrefix+link)
	_ = os.Remove(tmp)
	if err := os.Symlink(genPrefix+strconv.Itoa(gen), tmp); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, link)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: switch %s: %w", link, err)
	}
	return syncDir(s.dir)
}

// reject keeps the failed candidate as <dir>/rejected for debugging, replacing
// the previous one. Failing to do so is not worth an error: remove it instead.
func (s *Store) reject(dir string) {
	rej := filepath.Join(s.dir, rejectedDir)
	if err := os.RemoveAll(rej); err == nil {
		if err := os.Rename(dir, rej); err == nil {
			return
		}
	}
	_ = os.RemoveAll(dir)
}

// prune removes temporary entries and every generation that is neither current
// nor previous. It runs at open and around each switch, which is how leftovers of
// a crash (a partial .tmp-gen-N, an orphaned gen-N) disappear.
func (s *Store) prune() error {
	keep := map[int]bool{}
	for _, link := range []string{currentLink, previousLink} {
		if gen, err := s.linkGen(link); err == nil {
			keep[gen] = true
		} else if link == currentLink {
			// Don't delete any generation while current is missing
			// or unreadable: one of them is what HAProxy serves.
			if !errors.Is(err, ErrNoCurrent) {
				return err
			}
			if gen, err := s.newestComplete(); err != nil || gen != 0 {
				return err
			}
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		gen, isGen := parseGen(name)
		if (isGen && !keep[gen]) || strings.HasPrefix(name, tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
				return fmt.Errorf("store: prune: %w", err)
			}
		}
	}
	return nil
}

// readGen reads every regular file below dir into Files.
func readGen(dir string) (Files, error) {
	files := Files{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", dir, err)
	}
	return files, nil
}

// parallelWrites is how many files make writeAllSync write on several
// goroutines, and how many.
const (
	parallelWrites = 64
	writeWorkers   = 16
)

// writeAllSync writes the named files into dir with writeFileSync. Many
// (a first pass with 1,000 certificates) are written by several
// goroutines: each fsync waits for the disk, and ext4 commits the fsyncs
// that wait together at once. On the bench machine's ext4, 1,000 files of
// 1.2 KB took 0.57 s one by one, 195 to 228 ms four at a time, 128 to
// 163 ms sixteen at a time and 106 to 167 ms at 32 or 64. The error is
// the first one found.
func writeAllSync(dir string, names []string, files Contents) error {
	workers := 1
	if len(names) >= parallelWrites {
		workers = writeWorkers
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(names); i += workers {
				name := names[i]
				if err := writeFileSync(filepath.Join(dir, filepath.FromSlash(name)), files[name], fileMode); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeFileSync creates p (which must not exist) with mode, writes data
// and fsyncs it: the one way this package writes a file (Store's
// generations, WriteDir's files).
func writeFileSync(p string, data Content, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// Chmod: the umask must not decide whether HAProxy can read the file.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("store: %w", err)
	}
	if err := writeContent(f, data); err != nil {
		f.Close()
		return fmt.Errorf("store: write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: fsync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", p, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}
