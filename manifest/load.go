// Package manifest reads Kubernetes objects from YAML and JSON files, such
// as `kubectl get -o yaml` dumps, so that a configuration can be rendered
// and reproduced without a cluster.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Extensions of the files read; everything else under the path is ignored.
var extensions = []string{".yaml", ".yml", ".json"}

// MaxFileSize is the largest manifest file read (64 MiB, about 30,000
// Ingresses of `kubectl get -o yaml`). A larger file is reported and
// skipped: a symlink to /dev/zero or a runaway generator must not exhaust
// memory.
const MaxFileSize = 64 << 20

// Load reads every manifest file under path (a file or a directory, walked
// recursively in lexical order). Documents that cannot be decoded, files
// that cannot be read, unknown kinds and duplicates are reported as
// problems and skipped; only a path that cannot be read at all (it does
// not exist, or is not a file or directory) is an error, wrapping
// fs.ErrNotExist when it does not exist.
func Load(path string) (render.Inputs, []render.Problem, error) {
	return (&Reader{Path: path}).Load()
}

// LoadAll reads several paths as one set of manifests (a repeated
// --manifests): an object given under two paths is taken from the first
// and the other copy is reported (DuplicateObject), as within one path.
func LoadAll(paths ...string) (render.Inputs, []render.Problem, error) {
	var all render.Inputs
	var problems []render.Problem
	seen := map[string]string{}
	for _, path := range paths {
		in, ps, err := Load(path)
		if err != nil {
			return render.Inputs{}, nil, err
		}
		problems = append(problems, ps...)
		keep := func(kind string, m metav1.Object) bool {
			key := kind + "/" + m.GetNamespace() + "/" + m.GetName()
			if first, dup := seen[key]; dup {
				problems = append(problems, fileProblem(render.Warning, render.DuplicateObject, path,
					fmt.Sprintf("%s %s/%s is also given under %s; this copy ignored", kind, m.GetNamespace(), m.GetName(), first)))
				return false
			}
			seen[key] = path
			return true
		}
		all.Ingresses = appendKept(all.Ingresses, in.Ingresses, "Ingress", keep)
		all.IngressClasses = appendKept(all.IngressClasses, in.IngressClasses, "IngressClass", keep)
		all.Services = appendKept(all.Services, in.Services, "Service", keep)
		all.EndpointSlices = appendKept(all.EndpointSlices, in.EndpointSlices, "EndpointSlice", keep)
		all.Secrets = appendKept(all.Secrets, in.Secrets, "Secret", keep)
		all.ConfigMaps = appendKept(all.ConfigMaps, in.ConfigMaps, "ConfigMap", keep)
	}
	return all, problems, nil
}

func appendKept[T metav1.Object](dst, src []T, kind string, keep func(string, metav1.Object) bool) []T {
	for _, o := range src {
		if keep(kind, o) {
			dst = append(dst, o)
		}
	}
	return dst
}

// Reader reads the manifests under Path again on every Load, for run
// mode. Unlike a single Load it remembers what each file held, so that
//   - a file that cannot be read any more (permissions, an I/O error, a
//     dangling symlink, replaced by a FIFO) or that now holds a document
//     that does not decode is served as last read, with a warning, instead
//     of dropping its objects: a fault in reading the source never serves
//     a smaller configuration;
//   - a file whose size, modification time and inode are unchanged is not
//     read or decoded again.
//
// A file that is deleted is gone: its objects are no longer served.
type Reader struct {
	Path string

	mu   sync.Mutex
	last map[string]*fileState // path → last good read
}

// fileState is one file's decoded content.
type fileState struct {
	id      fileID
	objects []decoded
	// problems are the content's (unused kinds, documents that do not
	// decode), repeated on every pass that uses it: a file read once and
	// unchanged since is not read again, and its problems must not go
	// away with that.
	problems []render.Problem
	readAt   time.Time
}

// fileID tells whether a file changed without reading it.
type fileID struct {
	size, mtime int64
	dev, ino    uint64
}

type decoded struct {
	where string
	kind  string
	obj   runtime.Object
	meta  *metav1.ObjectMeta
}

// Reread makes the next Load read every file again, even those whose
// size, time and inode are unchanged (SIGHUP). What each file last held
// is kept for files that cannot be read.
func (r *Reader) Reread() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.last {
		st.id = fileID{}
	}
}

// maxListAttempts bounds how often a pass lists the directory again when a
// file disappeared between listing and reading (an editor or `mv` renaming
// files): the next listing sees it under its new name.
const maxListAttempts = 8

// Load reads the manifests; see Reader and the package function Load.
func (r *Reader) Load() (render.Inputs, []render.Problem, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var prevListing []string
	for attempt := 1; ; attempt++ {
		in, problems, next, listing, err := r.load(prevListing, attempt == maxListAttempts)
		if errors.Is(err, errRaced) {
			prevListing = listing
			continue
		}
		if err != nil {
			return render.Inputs{}, nil, err
		}
		r.last = next
		return in, problems, nil
	}
}

// errRaced: a listed file was gone when it was opened.
var errRaced = errors.New("a file changed while the manifests were read")

// load reads the files of one listing. It returns errRaced, with the
// listing, when the listing is not to be trusted: a file vanished between
// listing and reading, or a file read last time is missing from it and the
// previous listing of this Load was different (a file renamed while the
// directory was read can be missed under both names; a deleted or renamed
// file is missing from two listings in a row).
func (r *Reader) load(prevListing []string, lastAttempt bool) (render.Inputs, []render.Problem, map[string]*fileState, []string, error) {
	files, unreadableDirs, problems, err := listFiles(r.Path)
	if err != nil {
		return render.Inputs{}, nil, nil, nil, err
	}
	slices.Sort(files)
	listing := slices.Clone(files)
	trusted := lastAttempt || slices.Equal(listing, prevListing)
	for p := range r.last {
		if _, found := slices.BinarySearch(files, p); found {
			continue
		}
		// Files under a directory that cannot be listed any more are
		// kept as last read, like files that cannot be read.
		if slices.ContainsFunc(unreadableDirs, func(d string) bool { return strings.HasPrefix(p, d+string(filepath.Separator)) }) {
			files = append(files, p)
			continue
		}
		// A file read last time is not listed: deleted, or renamed
		// while the directory was read (readdir may then miss it under
		// both names). Only listings that agree make it gone; if they
		// never do (files renamed faster than a listing), it is kept as
		// last read for this pass.
		if !trusted {
			return render.Inputs{}, nil, nil, listing, errRaced
		}
		if !slices.Equal(listing, prevListing) {
			files = append(files, p)
		}
	}
	slices.Sort(files)

	next := make(map[string]*fileState, len(files))
	l := &loader{seen: map[string]string{}}
	for _, f := range files {
		prev := r.last[f]
		st, fileProblems, err := readFile(f, prev)
		if errors.Is(err, errVanished) {
			if !lastAttempt {
				return render.Inputs{}, nil, nil, nil, errRaced
			}
			if prev == nil {
				continue
			}
			// Still changing after every attempt: as last read, until a
			// pass sees the directory settle.
			st, err = prev, nil
		}
		if err != nil {
			// Unreadable: keep what it held, if anything.
			msg := err.Error()
			if prev != nil {
				msg += fmt.Sprintf("; serving its objects as read at %s", prev.readAt.UTC().Format(time.RFC3339))
				st = prev
			} else {
				msg += "; skipped"
			}
			problems = append(problems, fileProblem(render.Warning, render.FileUnreadable, f, msg))
		}
		problems = append(problems, fileProblems...)
		if st == nil {
			continue
		}
		next[f] = st
		problems = append(problems, st.problems...)
		for _, d := range st.objects {
			l.add(d)
		}
	}
	return l.in, append(problems, l.problems...), next, listing, nil
}

// errVanished: the file was listed but no longer exists, not even as a
// dangling symlink.
var errVanished = errors.New("vanished")

// readFile returns the decoded content of one file. Only regular files
// (symlinks followed) up to MaxFileSize are read; opening is non-blocking
// so that a FIFO can never hang a pass. When the file has not changed
// since prev, prev is returned without reading. When its new content has
// a document that does not decode and there is a prev, the problems say
// so and prev is returned: the file is served as last read until it is
// whole again (an editor half-way through a save, a typo).
func readFile(p string, prev *fileState) (*fileState, []render.Problem, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if target, lerr := os.Readlink(p); lerr == nil {
				return nil, nil, fmt.Errorf("is a symbolic link to %q, which does not exist", target)
			}
			return nil, nil, errVanished
		}
		return nil, nil, fmt.Errorf("cannot be read: %w", unwrapPath(err))
	}
	if err := checkRegular(st); err != nil {
		return nil, nil, err
	}
	id := idOf(st)
	if prev != nil && prev.id == id {
		return prev, nil, nil
	}
	// O_NONBLOCK: if the file was swapped for a FIFO since the Stat,
	// opening must not wait for a writer. It changes nothing for regular
	// files.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errVanished
		}
		return nil, nil, fmt.Errorf("cannot be read: %w", unwrapPath(err))
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, nil, fmt.Errorf("cannot be read: %w", unwrapPath(err))
	}
	if err := checkRegular(st); err != nil {
		return nil, nil, err
	}
	data, err := readAll(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("cannot be read: %w", unwrapPath(err))
	}
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("is larger than the limit of %d MiB", MaxFileSize>>20)
	}
	objects, problems := decodeFile(p, data)
	var broken []render.Problem
	for _, pr := range problems {
		if pr.Severity != render.Notice {
			broken = append(broken, pr)
		}
	}
	if len(broken) > 0 && prev != nil {
		// Read again on every pass (its identity is not prev's): these
		// problems come with each read.
		held := fileProblem(render.Warning, render.FileInvalid, p, fmt.Sprintf(
			"has documents that cannot be used (below); serving the file as read at %s until it is whole again",
			prev.readAt.UTC().Format(time.RFC3339)))
		return prev, append([]render.Problem{held}, broken...), nil
	}
	return &fileState{id: idOf(st), objects: objects, problems: problems, readAt: time.Now()}, nil, nil
}

// readAll reads at most MaxFileSize+1 bytes of f, into one buffer of the
// size the file had (a 20 MB dump read through io.ReadAll's growing
// buffer costs a tenth of its decoding); a file that grew meanwhile is
// still read whole, up to the limit.
func readAll(f io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, 0, min(size, MaxFileSize)+1)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) > MaxFileSize {
			return buf, nil
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(len(buf), MaxFileSize+1-len(buf)))
		}
	}
}

func checkRegular(st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		if st.Size() > MaxFileSize {
			return fmt.Errorf("is larger than the limit of %d MiB (%d bytes)", MaxFileSize>>20, st.Size())
		}
		return nil
	}
	what := "not a regular file"
	switch m := st.Mode(); {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("is %s, not a regular file; only regular files are read", what)
}

func idOf(st fs.FileInfo) fileID {
	id := fileID{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(sys.Dev), sys.Ino //nolint:unconvert // Dev's type differs by platform
	}
	return id
}

// unwrapPath drops the *PathError's repetition of the path, which the
// problem already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileProblem is a problem about a file, a directory or a document in a
// file, named by where (the path, with the document number if any).
func fileProblem(sev render.Severity, reason render.Reason, where, msg string) render.Problem {
	return render.Problem{Severity: sev, ObjectRef: render.ObjectRef{Kind: "File", Name: where}, Reason: reason, Message: msg}
}

// Decode reads the objects of one file's content; name is used in reports.
func Decode(name string, data []byte) (render.Inputs, []render.Problem) {
	objects, problems := decodeFile(name, data)
	l := &loader{seen: map[string]string{}}
	for _, d := range objects {
		l.add(d)
	}
	return l.in, append(problems, l.problems...)
}

// listFiles returns the manifest files under path, and the directories
// below it that could not be listed (reported in problems). Entries are
// listed whatever their type; readFile decides what can be read.
func listFiles(path string) (files, unreadableDirs []string, problems []render.Problem, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil, nil, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == path {
				return err
			}
			unreadableDirs = append(unreadableDirs, p)
			problems = append(problems, fileProblem(render.Warning, render.FileUnreadable, p,
				fmt.Sprintf("directory cannot be read: %v; its files are served as last read", unwrapPath(err))))
			return filepath.SkipDir
		}
		if d.IsDir() {
			// Editors and Kubernetes ConfigMap volumes keep hidden
			// directories (..data, .git); their files are not manifests.
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), ".") && slices.Contains(extensions, strings.ToLower(filepath.Ext(p))) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("manifests: %w", err)
	}
	return files, unreadableDirs, problems, nil
}

// decodeFile splits one file into documents, and List documents into
// their items (split.go, list.go), and decodes them on every core: a
// 10k-Ingress `kubectl get -o yaml` dump is one file, often one List.
// Objects get their default namespace here, once, since a Reader reuses
// them. Objects and problems come in document order, exactly as decoding
// the documents one after the other would give them (decode_test.go
// keeps that reference).
func decodeFile(name string, data []byte) ([]decoded, []render.Problem) {
	docs, splitErr := splitDocuments(data)
	var tail []render.Problem
	if splitErr != nil {
		where := fmt.Sprintf("%s (document %d)", name, len(docs)+1)
		tail = append(tail, fileProblem(render.Warning, render.FileInvalid, where,
			fmt.Sprintf("cannot be read: %s; rest of file skipped", splitErr)))
	}
	// The units decoded in parallel: whole documents, and the items of
	// the Lists that could be cut.
	var units []unit
	type part struct {
		where       string
		raw         []byte
		first, last int // its units
		list        bool
	}
	var parts []part
	for n, doc := range docs {
		if isBlank(doc.raw) {
			continue
		}
		where := fmt.Sprintf("%s (document %d)", name, n+1)
		p := part{where: where, raw: doc.raw, first: len(units)}
		if items, isJSON, ok := splitList(doc.raw); ok {
			p.list = true
			for i, item := range items {
				units = append(units, unit{where: fmt.Sprintf("%s items[%d]", where, i), raw: item, item: true, json: isJSON})
			}
		} else {
			units = append(units, unit{where: where, raw: doc.raw})
		}
		p.last = len(units)
		parts = append(parts, p)
	}
	results := make([]decoder, len(units))
	decodeAll(len(units), func(i int) {
		u := units[i]
		if u.item {
			results[i].decodeItem(u.where, u.raw, u.json)
		} else {
			results[i].decode(u.where, u.raw)
		}
	})
	var objects []decoded
	var problems []render.Problem
	for _, p := range parts {
		rs := results[p.first:p.last]
		if p.list && slices.ContainsFunc(rs, func(r decoder) bool { return r.cutWrong }) {
			// An item does not parse alone: decode the List whole, as
			// the reference does, whatever that gives.
			var d decoder
			d.decode(p.where, p.raw)
			rs = []decoder{d}
		}
		for i := range rs {
			objects = append(objects, rs[i].objects...)
			problems = append(problems, rs[i].problems...)
		}
	}
	return objects, append(problems, tail...)
}

// unit is one document, or one item of a List document, to decode.
type unit struct {
	where string
	raw   []byte
	item  bool // an item of a List cut by splitList
	json  bool // ... of a JSON List
}

// decodeAll calls decode(i) for i in [0, n), on GOMAXPROCS goroutines when
// there are enough units for that to pay.
func decodeAll(n int, decode func(i int)) {
	workers := min(goruntime.GOMAXPROCS(0), n/parallelDecodeMin)
	if workers <= 1 {
		for i := range n {
			decode(i)
		}
		return
	}
	// Units are taken in small batches from a shared counter: documents
	// differ in size, and a fixed share per goroutine would leave one
	// core idle at the end.
	const batch = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				start := int(next.Add(batch)) - batch
				if start >= n {
					return
				}
				for i := start; i < min(start+batch, n); i++ {
					decode(i)
				}
			}
		})
	}
	wg.Wait()
}

// parallelDecodeMin is how many units each decoding goroutine must have
// for parallel decoding to be worth starting them.
var parallelDecodeMin = 64

// splitList cuts a List document into its items (splitYAMLList,
// splitJSONList) when its skeleton decodes as a List whose only "items"
// key is the one the cut left empty; ok is false otherwise, and the
// document is decoded whole.
func splitList(raw []byte) (items [][]byte, isJSON, ok bool) {
	var skeleton []byte
	if isJSON = utilyaml.IsJSONBuffer(raw); isJSON {
		skeleton, items, ok = splitJSONList(raw)
	} else {
		skeleton, items, ok = splitYAMLList(raw)
	}
	if !ok {
		return nil, false, false
	}
	js, _, err := toJSON(skeleton)
	if err != nil {
		return nil, false, false
	}
	// The cut's `items: []` must be what the skeleton's top level reads
	// as "items" (not, say, text inside a multi-line quoted string).
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil || string(top["items"]) != "[]" {
		return nil, false, false
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
	if err != nil {
		return nil, false, false
	}
	switch o := obj.(type) {
	case *corev1.List:
		return items, isJSON, len(o.Items) == 0
	case *metav1.List:
		return items, isJSON, len(o.Items) == 0
	}
	return nil, false, false
}

type decoder struct {
	objects  []decoded
	problems []render.Problem
	// cutWrong: an item of a cut List does not parse on its own.
	cutWrong bool
}

func (d *decoder) report(sev render.Severity, reason render.Reason, where, format string, args ...any) {
	d.problems = append(d.problems, fileProblem(sev, reason, where, fmt.Sprintf(format, args...)))
}

// decodeItem decodes one item of a List cut by splitList, as decode
// decodes the item's JSON inside the whole List. An item that is not
// valid on its own sets cutWrong instead.
func (d *decoder) decodeItem(where string, raw []byte, isJSON bool) {
	if isJSON {
		// Decoding checks the syntax first: only an item that fails
		// is checked again, to tell a bad cut from a bad object.
		before := len(d.problems)
		d.decode(where, raw)
		if len(d.problems) > before && !json.Valid(raw) {
			d.cutWrong = true
		}
		return
	}
	js, fast, err := itemJSON(raw)
	// Aliases are left to the whole List: an anchor may be in another
	// item, and go-yaml's alias budget depends on the document's size.
	// The fast path takes none.
	if err != nil || !fast && bytes.ContainsAny(raw, "*&") {
		d.cutWrong = true
		return
	}
	d.decodeJSON(where, js)
}

func (d *decoder) decode(where string, raw []byte) {
	// JSON is YAML, so the YAML-to-JSON step handles both.
	js, _, err := toJSON(raw)
	if err != nil {
		d.report(render.Warning, render.FileInvalid, where, "invalid YAML: %s; skipped", safeError(err))
		return
	}
	d.decodeJSON(where, js)
}

// decodeJSON decodes one document's or item's JSON.
func (d *decoder) decodeJSON(where string, js []byte) {
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) && gvk != nil {
			d.report(render.Notice, render.UnusedKind, where, "kind %s is not used; ignored", gvk.String())
			return
		}
		d.report(render.Warning, render.FileInvalid, where, "cannot decode: %s; skipped", safeError(err))
		return
	}
	switch o := obj.(type) {
	case *corev1.List:
		for i, item := range o.Items {
			d.decode(fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *metav1.List:
		for i, item := range o.Items {
			d.decode(fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *networkingv1.Ingress:
		d.keep(where, "Ingress", o, &o.ObjectMeta, true)
	case *networkingv1.IngressClass:
		d.keep(where, "IngressClass", o, &o.ObjectMeta, false)
	case *corev1.Service:
		d.keep(where, "Service", o, &o.ObjectMeta, true)
	case *discoveryv1.EndpointSlice:
		d.keep(where, "EndpointSlice", o, &o.ObjectMeta, true)
	case *corev1.Secret:
		d.keep(where, "Secret", o, &o.ObjectMeta, true)
	case *corev1.ConfigMap:
		d.keep(where, "ConfigMap", o, &o.ObjectMeta, true)
	default:
		kind := obj.GetObjectKind().GroupVersionKind().String()
		d.report(render.Notice, render.UnusedKind, where, "kind %s is not used; ignored", kind)
	}
}

func (d *decoder) keep(where, kind string, obj runtime.Object, m *metav1.ObjectMeta, namespaced bool) {
	if namespaced && m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
	if !namespaced {
		m.Namespace = ""
	}
	d.objects = append(d.objects, decoded{where: where, kind: kind, obj: obj, meta: m})
}

// safeError is a decoding error fit for a report: problems end up in logs,
// /status and Events, so they must never quote the object. The Kubernetes
// decoder's messages do ("Object 'Kind' is missing in '{...}'" holds the
// whole document, Secret data included; JSON errors append the bytes
// around the error), so only the part before any quoted data is kept.
func safeError(err error) string {
	switch {
	case runtime.IsMissingKind(err):
		return `no "kind" field`
	case runtime.IsMissingVersion(err):
		return `no "apiVersion" field`
	}
	msg := err.Error()
	for _, marker := range []string{", error found in #", "|", " in '", "\n"} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i]
		}
	}
	const limit = 200
	if len(msg) > limit {
		msg = msg[:limit] + "…"
	}
	return strings.TrimSpace(msg)
}

// loader merges decoded objects into Inputs, keeping the first of
// duplicates.
type loader struct {
	in       render.Inputs
	problems []render.Problem
	seen     map[string]string // kind/namespace/name → where first seen
}

func (l *loader) add(d decoded) {
	key := d.kind + "/" + d.meta.Namespace + "/" + d.meta.Name
	if first, dup := l.seen[key]; dup {
		l.problems = append(l.problems, fileProblem(render.Warning, render.DuplicateObject, d.where,
			fmt.Sprintf("%s %s/%s is also defined in %s; this copy ignored", d.kind, d.meta.Namespace, d.meta.Name, first)))
		return
	}
	l.seen[key] = d.where
	switch o := d.obj.(type) {
	case *networkingv1.Ingress:
		l.in.Ingresses = append(l.in.Ingresses, o)
	case *networkingv1.IngressClass:
		l.in.IngressClasses = append(l.in.IngressClasses, o)
	case *corev1.Service:
		l.in.Services = append(l.in.Services, o)
	case *discoveryv1.EndpointSlice:
		l.in.EndpointSlices = append(l.in.EndpointSlices, o)
	case *corev1.Secret:
		l.in.Secrets = append(l.in.Secrets, o)
	case *corev1.ConfigMap:
		l.in.ConfigMaps = append(l.in.ConfigMaps, o)
	}
}
