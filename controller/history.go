package controller

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// Outcome is how a pass ended.
type Outcome string

const (
	// OutcomeUnchanged: the files are what HAProxy runs already.
	OutcomeUnchanged Outcome = "unchanged"
	// OutcomeRuntime: applied through the runtime API, no reload.
	OutcomeRuntime Outcome = "runtime"
	// OutcomeReload: a new generation and a reload.
	OutcomeReload Outcome = "reload"
	// OutcomeWritten: validated and written; HAProxy was not up yet.
	OutcomeWritten Outcome = "written"
	// OutcomeRejected: HAProxy refused the candidate; the last good
	// configuration stays.
	OutcomeRejected Outcome = "rejected"
	// OutcomeFailed: reading, rendering, writing or reloading failed; it
	// is retried.
	OutcomeFailed Outcome = "failed"
)

// Change is one object (or the templates) that changed since the pass
// before.
type Change struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Op is added, updated or deleted.
	Op string `json:"op"`
}

func (c Change) String() string {
	if c.Namespace == "" {
		return fmt.Sprintf("%s %s %s", c.Op, c.Kind, c.Name)
	}
	return fmt.Sprintf("%s %s %s/%s", c.Op, c.Kind, c.Namespace, c.Name)
}

// Phases are the durations of a pass's steps.
type Phases struct {
	Read   time.Duration `json:"read"`
	Render time.Duration `json:"render"`
	Plan   time.Duration `json:"plan"`
	// Write is writing the generation (Check excluded).
	Write time.Duration `json:"write"`
	// Check is haproxy -c (none for a runtime-only change).
	Check time.Duration `json:"check"`
	// Apply is the runtime API commands or the reload.
	Apply time.Duration `json:"apply"`
}

// Pass is the record of one pass of the loop: what triggered it, how it
// was applied, how long each step took, and what changed in the files.
type Pass struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Trigger []Change  `json:"trigger"`
	Outcome Outcome   `json:"outcome"`
	// ReloadReason says why a reload was needed.
	ReloadReason string `json:"reload_reason,omitempty"`
	// Commands are the runtime API commands sent.
	Commands   []string      `json:"commands,omitempty"`
	Phases     Phases        `json:"phases"`
	Took       time.Duration `json:"took"`
	Generation int           `json:"generation"`
	// Error is why the pass failed or the candidate was rejected (with the
	// objects behind HAProxy's failing line).
	Error string `json:"error,omitempty"`
	// ChangeToApplied is the time from the first change notification
	// this pass took in to HAProxy serving the result.
	ChangeToApplied time.Duration `json:"change_to_applied,omitempty"`
	// Diff is the unified diff of every generated file (certificates by
	// fingerprint, never key bytes).
	Diff string `json:"diff,omitempty"`
	// Problems is the number of problems after the pass; NewProblems and
	// GoneProblems are the ones it added and resolved (at most
	// maxTrigger each), with their typed reasons.
	Problems     int              `json:"problems"`
	NewProblems  []render.Problem `json:"new_problems,omitempty"`
	GoneProblems []render.Problem `json:"gone_problems,omitempty"`
}

// problemChanges lists the problems in next but not in old, and the other
// way round, compared as reported.
func problemChanges(old, next []render.Problem) (added, gone []render.Problem) {
	was := make(map[string]bool, len(old))
	for _, p := range old {
		was[p.Report()] = true
	}
	now := make(map[string]bool, len(next))
	for _, p := range next {
		now[p.Report()] = true
		if !was[p.Report()] && len(added) < maxTrigger {
			added = append(added, p)
		}
	}
	for _, p := range old {
		if !now[p.Report()] && len(gone) < maxTrigger {
			gone = append(gone, p)
		}
	}
	return added, gone
}

// Changed is true for passes that belong in the history: anything but
// "unchanged".
func (p *Pass) Changed() bool { return p.Outcome != OutcomeUnchanged }

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
// and only new pointers are compared in full. A list the source says is
// unchanged (render.Inputs.Unchanged) and that is the one of the last
// update is skipped; of Ingresses told as a delta from the list of the
// last update (render.Inputs.IngressDelta), only the delta is taken in.
type inputTracker struct {
	gen  uint64
	seen map[any]trackedObject
	// lists are each kind's list in the last update, count how many
	// objects of each kind seen holds.
	lists [numKinds]listID
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

// listID identifies a list handed out by a source: its first element's
// address and its length.
type listID struct {
	first any
	n     int
}

func idOf[T any](list []T) listID {
	if len(list) == 0 {
		return listID{}
	}
	return listID{first: &list[0], n: len(list)}
}

// visitList visits the objects of one kind's list, if take says to.
func visitList[T metav1.Object](take func(kind int, id listID) bool, visit func(kind int, obj metav1.Object), kind int, list []T) {
	if take(kind, idOf(list)) {
		for _, o := range list {
			visit(kind, o)
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
	// take tells whether to visit a kind's list: not when the source says
	// it is unchanged and it is the one of the last update.
	take := func(kind int, id listID) bool {
		if in.Unchanged.Has(inputKinds[kind]) && id == t.lists[kind] {
			skipped[kind] = true
			kept += t.count[kind]
			return false
		}
		t.lists[kind] = id
		return true
	}
	gone := map[objectKey]any{}
	if d := in.IngressDelta; d != nil && !(in.Unchanged.Has(render.IngressesKind) && idOf(in.Ingresses) == t.lists[kindIngress]) &&
		idOf(d.Since) == t.lists[kindIngress] {
		// Told what changed since the list taken in last: only those.
		t.lists[kindIngress] = idOf(in.Ingresses)
		skipped[kindIngress] = true
		for _, obj := range d.Removed {
			if _, ok := t.seen[obj]; ok {
				gone[trackedKey(kindIngress, obj)] = obj
				delete(t.seen, obj)
				t.count[kindIngress]--
			}
		}
		kept += t.count[kindIngress]
		for _, obj := range d.Added {
			if _, ok := t.seen[obj]; !ok {
				visit(kindIngress, obj)
			}
		}
	} else {
		visitList(take, visit, kindIngress, in.Ingresses)
	}
	visitList(take, visit, kindIngressClass, in.IngressClasses)
	visitList(take, visit, kindService, in.Services)
	visitList(take, visit, kindEndpointSlice, in.EndpointSlices)
	visitList(take, visit, kindSecret, in.Secrets)
	visitList(take, visit, kindConfigMap, in.ConfigMaps)
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
func FileDiff(old, next *haproxycfg.Output) string {
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
		var a, c []byte
		if old != nil {
			a = old.Get(p)
		}
		c = next.Get(p)
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
		text, err := unifiedDiff(as, cs, from, to)
		if err != nil {
			text = fmt.Sprintf("--- %s\n+++ %s\n@@ diff failed: %v @@\n", from, to, err)
		}
		if !haproxycfg.IsPEMFile(p) {
			text = annotateHunks(text, p, old, next)
		}
		b.WriteString(text)
		if b.Len() > maxDiffBytes {
			s := b.String()[:maxDiffBytes]
			return s + "\n... diff truncated at 256 KiB\n"
		}
	}
	return b.String()
}

// diffContext is the number of unchanged lines around each change.
const diffContext = 2

// unifiedDiff is difflib's unified diff of two texts, with the lines both
// share at the start and end left out first: difflib's matcher is
// quadratic at worst and took 140 ms for one endpoint change in a
// 10k-Service file, and splitting whole files into lines for it was
// megabytes of garbage per pass; most changes touch a few lines in the
// middle of large sorted files. The shared parts are found on the bytes,
// and only the changed middle (with its context lines) is split.
func unifiedDiff(a, b []byte, from, to string) (string, error) {
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
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: middleLines(a, start, aEnd), B: middleLines(b, start, bEnd), FromFile: from, ToFile: to, Context: diffContext,
	})
	if err != nil || start == 0 {
		return text, err
	}
	return shiftHunks(text, bytes.Count(a[:start], []byte("\n"))), nil
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

// hunkHeader is a unified diff's "@@ -start[,len] +start[,len] @@".
var hunkHeader = regexp.MustCompile(`^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@`)

// shiftHunks adds offset to the line numbers of every hunk header of a
// unified diff made from a slice that started offset lines in.
func shiftHunks(text string, offset int) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		m := hunkHeader.FindStringSubmatchIndex(line)
		if m == nil {
			b.WriteString(line)
			continue
		}
		a, _ := strconv.Atoi(line[m[2]:m[3]])
		c, _ := strconv.Atoi(line[m[6]:m[7]])
		fmt.Fprintf(&b, "@@ -%d%s +%d%s @@%s", a+offset, line[m[4]:m[5]], c+offset, line[m[8]:m[9]], line[m[1]:])
	}
	return b.String()
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

// annotateHunks appends to each hunk header, where git puts a function's
// name, the objects behind the hunk's first changed line
// (haproxycfg.Output.Origin): which Ingress, Service or Secret a change comes
// from. The diff stays one patch(1) reads.
func annotateHunks(text, path string, old, next *haproxycfg.Output) string {
	var b strings.Builder
	lines := strings.SplitAfter(text, "\n")
	for i, line := range lines {
		var oldLine, newLine int
		if !strings.HasPrefix(line, "@@ ") {
			b.WriteString(line)
			continue
		}
		fmt.Sscanf(line, "@@ -%d", &oldLine)
		if j := strings.Index(line, " +"); j >= 0 {
			fmt.Sscanf(line[j:], " +%d", &newLine)
		}
		where := ""
		// Walk the hunk to its first changed line, counting lines on
		// both sides.
	walk:
		for _, l := range lines[i+1:] {
			switch {
			case strings.HasPrefix(l, "@@ "):
				break walk
			case strings.HasPrefix(l, "+"):
				where = next.Origin(path, newLine)
				break walk
			case strings.HasPrefix(l, "-"):
				if old != nil {
					where = old.Origin(path, oldLine)
				}
				break walk
			default:
				oldLine++
				newLine++
			}
		}
		if where != "" {
			line = strings.TrimSuffix(line, "\n") + " " + where + "\n"
		}
		b.WriteString(line)
	}
	return b.String()
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
