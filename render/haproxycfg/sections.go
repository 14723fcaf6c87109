package haproxycfg

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"text/template"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// sectionCache keeps each backend's haproxy.cfg section between renders,
// with the backend it was rendered from, for one template. Both lists are
// sorted by backend name, as Model.Backends is: a render walks them side
// by side.
type sectionCache struct {
	tmpl *template.Template
	bes  []*render.Backend
	// parts is the last haproxy.cfg, rendered from bes: its Sections
	// are theirs.
	parts *configParts
}

// sameSection is true when a and b render the same section: the template
// sees a backend's names, port, slots and annotations (backendData),
// nothing else.
func sameSection(a, b *render.Backend) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port &&
		a.PortName == b.PortName && a.Slots == b.Slots && a.Spare == b.Spare && a.OwnName == b.OwnName && (lists.Same(a.SlotAddrs, b.SlotAddrs) || slices.Equal(a.SlotAddrs, b.SlotAddrs)) &&
		samePolicy(a, b)
}

// assembleConfig makes haproxy.cfg from the main template's output
// (rendered) and one "backend" section per backend where it printed
// .BackendSections: the file in pieces (configParts), put together only
// when read. A template without .BackendSections ranges over .Backends
// itself: its output is the file.
func assembleConfig(rendered []byte, m *render.Model, cfg Config, cache *sectionCache) (File, error) {
	marker := []byte(sectionsMarker)
	switch bytes.Count(rendered, marker) {
	case 0:
		return File{Path: ConfigFile, data: rendered}, nil
	case 1:
	default:
		return File{}, fmt.Errorf("template %s prints .BackendSections more than once", cfg.Template.Name())
	}
	bt := cfg.Template.Lookup(BackendTemplate)
	if bt == nil {
		return File{}, fmt.Errorf("template %s prints .BackendSections but no template defines %q", cfg.Template.Name(), BackendTemplate)
	}
	i := bytes.Index(rendered, marker)
	head, tail := rendered[:i:i], rendered[i+len(marker):]
	if cache != nil && cache.tmpl == cfg.Template && cache.parts != nil && lists.Same(cache.bes, m.Backends) &&
		bytes.Equal(cache.parts.Head, head) && bytes.Equal(cache.parts.Tail, tail) {
		// No backend changed (the engine hands out the same list), nor
		// the rest: the same file, put together at most once.
		return File{Path: ConfigFile, lazy: cache.parts}, nil
	}
	sections := make([][]byte, len(m.Backends))

	var cached sectionCache
	var texts [][]byte // the cached sections, of cached.bes
	if cache != nil {
		if cache.tmpl != cfg.Template {
			*cache = sectionCache{tmpl: cfg.Template}
		}
		cached = *cache
		if cached.parts != nil {
			// Pieces of the last file once it was put together.
			texts = cached.parts.Sections()
		} else {
			cached.bes = nil
		}
	}
	var todo []int // sections to render: not in the cache
	if lists.Same(cached.bes, m.Backends) {
		// No backend changed (the engine hands out the same list).
		copy(sections, texts)
	} else {
		j := 0
		for i, be := range m.Backends {
			// Comparing pointers first: the names are in backends
			// spread over the heap, and most are the same.
			if j < len(cached.bes) && cached.bes[j] != be {
				for j < len(cached.bes) && cached.bes[j].Name < be.Name {
					j++
				}
			}
			if j < len(cached.bes) && (cached.bes[j] == be || sameSection(cached.bes[j], be)) {
				sections[i] = texts[j]
				j++
			} else {
				todo = append(todo, i)
			}
		}
	}
	if err := renderSections(bt, m.Backends, todo, sections); err != nil {
		return File{}, err
	}
	parts := newConfigParts(head, tail, sections)
	if cache != nil {
		if cached.parts != nil && cached.parts.same(parts) {
			// Nothing changed (only maps did): the same file, put
			// together at most once.
			parts = cached.parts
		}
		// The model is not modified after it is rendered (the engine
		// copies its backend list before a change, and never changes a
		// backend): the next render compares with them where they are.
		cache.bes, cache.parts = m.Backends, parts
	}
	return File{Path: ConfigFile, lazy: parts}, nil
}

// parallelSections is how many sections to render make renderSections
// use every core: a first render at 10,000 Services spends most of its
// time in the backend template.
var parallelSections = 512

// renderSections runs the backend template for the backends at the
// indexes todo, into sections. Sections do not depend on each other and a
// template may be executed in parallel, so many are split over the cores;
// the error reported is the one of the first backend that failed.
func renderSections(bt *template.Template, backends []*render.Backend, todo []int, sections [][]byte) error {
	workers := min(runtime.GOMAXPROCS(0), len(todo)/parallelSections+1)
	type failure struct {
		at  int // index of the backend
		err error
	}
	failed := make([]failure, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			// Worker w takes every workers-th section: neighbours have
			// similar sizes, so the shares are even.
			for k := w; k < len(todo); k += workers {
				i := todo[k]
				buf.Reset()
				if err := bt.Execute(&buf, backendData(backends[i])); err != nil {
					failed[w] = failure{i, fmt.Errorf("executing template %q for backend %s: %w", BackendTemplate, backends[i].Name, err)}
					return
				}
				sections[i] = bytes.Clone(buf.Bytes())
			}
		}()
	}
	wg.Wait()
	// The first failed backend by index, whichever worker found it.
	var first *failure
	for w := range failed {
		if f := &failed[w]; f.err != nil && (first == nil || f.at < first.at) {
			first = f
		}
	}
	if first != nil {
		return first.err
	}
	return nil
}
