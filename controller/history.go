package controller

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// History keeps the last passes that changed something, newest first.
type History struct {
	mu     sync.Mutex
	limit  int
	passes []*Pass // oldest first
}

// NewHistory keeps up to limit passes.
func NewHistory(limit int) *History {
	return &History{limit: max(limit, 1)}
}

func (h *History) add(p *Pass) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.passes = append(h.passes, p)
	if len(h.passes) > h.limit {
		h.passes = slices.Delete(h.passes, 0, len(h.passes)-h.limit)
	}
}

// List returns up to n passes, newest first (all for n <= 0). The passes
// are copies.
func (h *History) List(n int) []Pass {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n <= 0 || n > len(h.passes) {
		n = len(h.passes)
	}
	out := make([]Pass, 0, n)
	for i := len(h.passes) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, *h.passes[i])
	}
	return out
}

// Get returns the pass with that ID.
func (h *History) Get(id int64) (Pass, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.passes {
		if p.ID == id {
			return *p, true
		}
	}
	return Pass{}, false
}

func (h *History) setDiff(p *Pass, diff string) {
	h.mu.Lock()
	p.Diff = diff
	h.mu.Unlock()
}

// objectKey identifies an object across passes.
type objectKey struct{ kind, namespace, name string }

// inputTracker follows the objects of successive passes to say what
// changed. The informer cache and the manifest reader hand out the same
// pointer for an unchanged object and a new one for every change, so an
// object seen before is found by its pointer, without hashing its name,
// and only new pointers are compared in full. How much of each list it
// reads is render.Taken's decision, the engine's too: a list the source
// says is unchanged and that is the one of the last update is skipped; of
// a kind told as a delta from the list of the last update (Ingresses,
// Services, EndpointSlices), only the delta is taken in. (Why the tracker
// keeps its own set of objects beside the engine's: see render/taken.go.)
type inputTracker struct {
	gen  uint64
	seen map[any]trackedObject
	// taken are the lists of the last update; count how many objects
	// of each kind seen holds.
	taken render.Taken
	count [numKinds]int
}

// The kinds of render.Inputs, in the order update visits them.
const (
	kindIngress = iota
	kindIngressClass
	kindService
	kindEndpointSlice
	kindSecret
	kindConfigMap
	numKinds
)

var kindNames = [numKinds]string{"Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap"}

var inputKinds = [numKinds]render.InputKinds{render.IngressesKind, render.IngressClassesKind, render.ServicesKind,
	render.EndpointSlicesKind, render.SecretsKind, render.ConfigMapsKind}

// listVisitor is what update does with the objects of one kind's list
// (visitList).
type listVisitor struct {
	// take says how much of the kind to read (render.Taken.Take).
	take func(kind int) render.Take
	// visit takes in an object of the list; forget one a delta removes.
	visit, forget func(kind int, obj metav1.Object)
	// keep counts the kind's objects seen before as seen again.
	keep func(kind int)
	seen func(obj any) bool
}

// visitList visits one kind's list, or only the objects of its delta (d;
// nil for a kind told whole), as v.take says.
func visitList[T metav1.Object](v listVisitor, kind int, list []T, d *render.Delta[T]) {
	switch v.take(kind) {
	case render.TakeList:
		for _, o := range list {
			v.visit(kind, o)
		}
	case render.TakeNothing:
		v.keep(kind)
	case render.TakeDelta:
		// Told what changed since the list taken in last: only those.
		for _, o := range d.Removed {
			v.forget(kind, o)
		}
		v.keep(kind)
		for _, o := range d.Added {
			if !v.seen(o) {
				v.visit(kind, o)
			}
		}
	}
}

// trackedObject is what the tracker keeps of an object it saw, in a map
// by the object: its name is read from the object when it is needed
// (trackedKey), not kept (at 10k Ingresses, a kept name in an object of
// its own per Ingress was over a megabyte).
type trackedObject struct {
	gen  uint64
	kind uint8
}

// trackedKey names a tracked object of kind.
func trackedKey(kind int, obj any) objectKey {
	o := obj.(metav1.Object)
	return objectKey{kindNames[kind], o.GetNamespace(), o.GetName()}
}

// update takes in a pass's objects and returns what changed since the
// last call, sorted by kind, namespace and name.
func (t *inputTracker) update(in render.Inputs) []Change {
	if t.seen == nil {
		t.seen = map[any]trackedObject{}
	}
	t.gen++
	type fresh struct {
		key  objectKey
		kind int
		obj  any
	}
	var added []fresh
	var skipped [numKinds]bool
	kept := 0
	visit := func(kind int, obj metav1.Object) {
		if o, ok := t.seen[obj]; ok {
			o.gen = t.gen
			t.seen[obj] = o
			kept++
			return
		}
		added = append(added, fresh{objectKey{kindNames[kind], obj.GetNamespace(), obj.GetName()}, kind, obj})
	}
	gone := map[objectKey]any{}
	v := listVisitor{
		// A list the source says is unchanged and that is the one of the
		// last update is skipped, as are the objects a delta does not
		// name: nothing of such a kind is gone but what the delta removes.
		take: func(kind int) render.Take {
			tk := t.taken.Take(in, inputKinds[kind])
			skipped[kind] = tk != render.TakeList
			return tk
		},
		visit: visit,
		forget: func(kind int, obj metav1.Object) {
			if _, ok := t.seen[obj]; ok {
				gone[trackedKey(kind, obj)] = obj
				delete(t.seen, obj)
				t.count[kind]--
			}
		},
		keep: func(kind int) { kept += t.count[kind] },
		seen: func(obj any) bool { _, ok := t.seen[obj]; return ok },
	}
	visitList(v, kindIngress, in.Ingresses, in.IngressDelta)
	visitList(v, kindIngressClass, in.IngressClasses, nil)
	visitList(v, kindService, in.Services, in.ServiceDelta)
	visitList(v, kindEndpointSlice, in.EndpointSlices, in.EndpointSliceDelta)
	visitList(v, kindSecret, in.Secrets, nil)
	visitList(v, kindConfigMap, in.ConfigMaps, nil)
	// Every object seen before was seen again: none is gone.
	for obj, o := range t.seen {
		if kept == len(t.seen) {
			break
		}
		if o.gen != t.gen && !skipped[o.kind] {
			gone[trackedKey(int(o.kind), obj)] = obj
			delete(t.seen, obj)
			t.count[o.kind]--
		}
	}
	if len(t.seen) == 0 {
		// The first update, or after everything went: sized once rather
		// than grown through every size up to the cluster's.
		t.seen = make(map[any]trackedObject, len(added))
	}
	var out []Change // nil when nothing changed
	if n := len(added) + len(gone); n > 0 {
		out = make([]Change, 0, n)
	}
	for _, f := range added {
		t.seen[f.obj] = trackedObject{kind: uint8(f.kind), gen: t.gen}
		t.count[f.kind]++
		prev, ok := gone[f.key]
		delete(gone, f.key)
		switch {
		case !ok:
			out = append(out, Change{Kind: f.key.kind, Namespace: f.key.namespace, Name: f.key.name, Op: "added"})
		case !equality.Semantic.DeepEqual(prev, f.obj):
			out = append(out, Change{Kind: f.key.kind, Namespace: f.key.namespace, Name: f.key.name, Op: "updated"})
		}
	}
	for k := range gone {
		out = append(out, Change{Kind: k.kind, Namespace: k.namespace, Name: k.name, Op: "deleted"})
	}
	// By kind, namespace, then name, field by field: concatenating them
	// in the comparison made a first pass at 10k Ingresses sort 14k
	// changes through half a million string allocations.
	slices.SortFunc(out, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return out
}

// maxDiffBytes bounds one pass's diff in the history: a change of every
// route at 10k Ingresses must not keep megabytes per entry.
const maxDiffBytes = 256 << 10

// FileDiff is the unified diff between two outputs, file by file.
// Certificate files are compared through haproxycfg.DescribePEM, so neither
// side shows key material. old may be nil (everything is added).
func FileDiff(old, next *haproxycfg.Output) string { return fileDiff(old, next, true) }

// fileDiff is FileDiff; without spans it reads every changed file whole
// (what the spans must give the same diff as).
func fileDiff(old, next *haproxycfg.Output, spans bool) string {
	var b strings.Builder
	paths := map[string]bool{}
	if old != nil {
		for _, f := range old.Files {
			paths[f.Path] = true
		}
	}
	for _, f := range next.Files {
		paths[f.Path] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	for _, p := range sorted {
		// A file in pieces on both sides is read only where they
		// differ: line is the lines before that span.
		var a, c []byte
		line, ok := 0, false
		if spans {
			a, c, line, ok = haproxycfg.ChangedSpan(old, next, p, diffContext)
		}
		if !ok {
			a, c = nil, next.Get(p)
			if old != nil {
				a = old.Get(p)
			}
		}
		if string(a) == string(c) {
			continue
		}
		// haproxy.cfg needs its hashes hidden only where there are any.
		as, cs := a, c
		if p != haproxycfg.ConfigFile || (old != nil && old.HasUserlists()) || next.HasUserlists() {
			as, cs = shownBytes(p, a), shownBytes(p, c)
		}
		if string(as) == string(cs) {
			// A key (or a password hash) changed but nothing shown:
			// say so without showing either.
			what := "private key"
			if !haproxycfg.IsPEMFile(p) {
				what = "password hash"
			}
			fmt.Fprintf(&b, "--- a/%s\n+++ b/%s\n@@ %s changed (not shown) @@\n", p, p, what)
			continue
		}
		from, to := "a/"+p, "b/"+p
		if a == nil {
			from = "/dev/null"
		}
		if c == nil {
			to = "/dev/null"
		}
		var origin func(fromOld bool, line int) string
		if !haproxycfg.IsPEMFile(p) {
			origin = func(fromOld bool, line int) string {
				if fromOld {
					if old == nil {
						return ""
					}
					return old.Origin(p, line)
				}
				return next.Origin(p, line)
			}
		}
		writeUnifiedDiff(&b, as, cs, line, from, to, origin)
		if b.Len() > maxDiffBytes {
			s := b.String()[:maxDiffBytes]
			return s + "\n... diff truncated at 256 KiB\n"
		}
	}
	return b.String()
}

// diffContext is the number of unchanged lines around each change.
const diffContext = 2

// writeUnifiedDiff writes the unified diff of two texts (difflib's
// matcher and format), with the lines both share at the start and end left
// out first: difflib's matcher is quadratic at worst and took 140 ms for
// one endpoint change in a 10k-Service file, and splitting whole files
// into lines for it was megabytes of garbage per pass; most changes touch
// a few lines in the middle of large sorted files. The shared parts are
// found on the bytes, and only the changed middle (with its context lines)
// is split and matched. The hunks are written here from the matcher's
// opcodes, numbered in the whole files' lines.
//
// a and b may be spans of the two files that start at the same line
// (haproxycfg.ChangedSpan): line is the number of lines before them.
//
// origin, when set, names the objects behind a line (1-based) of the old
// or the new file: each hunk header gets those of its first changed line,
// where git puts a function's name. The diff stays one patch(1) reads.
func writeUnifiedDiff(w *strings.Builder, a, b []byte, line int, from, to string, origin func(fromOld bool, line int) string) {
	// pre: the shared lines at the start, as a byte length ending just
	// after a newline.
	pre := commonPrefix(a, b)
	pre = bytes.LastIndexByte(a[:pre], '\n') + 1
	// suf: the shared lines at the end, not overlapping pre, starting
	// just after a newline (or where pre ends) on both sides.
	suf := commonSuffix(a[pre:], b[pre:])
	lineStart := func(x []byte, i int) bool { return i == pre || x[i-1] == '\n' }
	for suf > 0 && !(lineStart(a, len(a)-suf) && lineStart(b, len(b)-suf)) {
		suf--
	}
	// Keep the context lines around the changed middle.
	start := pre
	for range diffContext {
		if start == 0 {
			break
		}
		start = bytes.LastIndexByte(a[:start-1], '\n') + 1
	}
	aEnd, bEnd := contextEnd(a, len(a)-suf), contextEnd(b, len(b)-suf)
	al, bl := middleLines(a, start, aEnd), middleLines(b, start, bEnd)
	// off is the line index (in both files) the middle starts at.
	off := line + bytes.Count(a[:start], []byte("\n"))
	for i, g := range difflib.NewMatcher(al, bl).GetGroupedOpCodes(diffContext) {
		if i == 0 {
			fmt.Fprintf(w, "--- %s\n+++ %s\n", from, to)
		}
		first, last := g[0], g[len(g)-1]
		fmt.Fprintf(w, "@@ -%s +%s @@", hunkRange(off+first.I1, off+last.I2), hunkRange(off+first.J1, off+last.J2))
		if origin != nil {
			if where := hunkOrigin(g, off, origin); where != "" {
				w.WriteString(" " + where)
			}
		}
		w.WriteByte('\n')
		for _, c := range g {
			if c.Tag == 'e' {
				writeLines(w, ' ', al[c.I1:c.I2])
				continue
			}
			if c.Tag == 'r' || c.Tag == 'd' {
				writeLines(w, '-', al[c.I1:c.I2])
			}
			if c.Tag == 'r' || c.Tag == 'i' {
				writeLines(w, '+', bl[c.J1:c.J2])
			}
		}
	}
}

// hunkRange is a hunk's "start[,length]" for lines [start, stop) (0-based)
// of a file, as the unified format (and difflib) writes it: 1-based, the
// length left out when it is 1, and an empty range starting at the line
// before it.
func hunkRange(start, stop int) string {
	switch n := stop - start; n {
	case 1:
		return strconv.Itoa(start + 1)
	case 0:
		return strconv.Itoa(start) + ",0"
	default:
		return strconv.Itoa(start+1) + "," + strconv.Itoa(n)
	}
}

// hunkOrigin names the objects behind a hunk's first changed line: the
// first removed line, in the old file, or the first added one, in the new.
func hunkOrigin(g []difflib.OpCode, off int, origin func(fromOld bool, line int) string) string {
	for _, c := range g {
		switch c.Tag {
		case 'r', 'd':
			return origin(true, off+c.I1+1)
		case 'i':
			return origin(false, off+c.J1+1)
		}
	}
	return ""
}

func writeLines(w *strings.Builder, mark byte, lines []string) {
	for _, l := range lines {
		w.WriteByte(mark)
		w.WriteString(l)
	}
}

// commonPrefix is the length of the longest common prefix of a and b,
// compared a block at a time (bytes.Equal is vectorized).
func commonPrefix(a, b []byte) int {
	const block = 256
	n := 0
	for n+block <= len(a) && n+block <= len(b) && bytes.Equal(a[n:n+block], b[n:n+block]) {
		n += block
	}
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// commonSuffix is commonPrefix from the end.
func commonSuffix(a, b []byte) int {
	const block = 256
	n := 0
	for n+block <= len(a) && n+block <= len(b) && bytes.Equal(a[len(a)-n-block:len(a)-n], b[len(b)-n-block:len(b)-n]) {
		n += block
	}
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

// contextEnd moves end (the start of a line, or len(data)) diffContext
// lines further.
func contextEnd(data []byte, end int) int {
	for range diffContext {
		if end >= len(data) {
			return len(data)
		}
		i := bytes.IndexByte(data[end:], '\n')
		if i < 0 {
			return len(data)
		}
		end += i + 1
	}
	return end
}

// middleLines splits data[start:end] into lines as difflib.SplitLines
// splits a whole text: every line keeps its newline, and at the end of
// the text a last line "\n" follows (difflib's own quirk, kept so that
// the diff is the one of the whole file).
func middleLines(data []byte, start, end int) []string {
	lines := strings.SplitAfter(string(data[start:end]), "\n")
	if end < len(data) {
		return lines[:len(lines)-1] // the "" after the last newline
	}
	lines[len(lines)-1] += "\n"
	return lines
}

// shown is a file's content as dumps and diffs may show it.
func shown(path string, data []byte) string { return string(shownBytes(path, data)) }

// shownBytes is shown without a copy where nothing is hidden.
func shownBytes(path string, data []byte) []byte {
	if data == nil {
		return nil
	}
	if haproxycfg.IsPEMFile(path) {
		return []byte(haproxycfg.DescribePEM(data))
	}
	if path == haproxycfg.ConfigFile {
		return haproxycfg.RedactConfig(data)
	}
	return data
}

// ObjectChanges lists the objects added, updated or deleted from old to
// next (for `diff`).
func ObjectChanges(old, next render.Inputs) []Change {
	var t inputTracker
	t.update(old)
	return t.update(next)
}

// maxTrigger bounds the changes a pass record names: the first pass
// "adds" every object of the cluster.
const maxTrigger = 50

func capChanges(ch []Change) []Change {
	if len(ch) <= maxTrigger {
		return ch
	}
	more := len(ch) - maxTrigger
	return append(ch[:maxTrigger:maxTrigger], Change{Kind: "Objects", Name: fmt.Sprintf("%d more", more), Op: "and"})
}
