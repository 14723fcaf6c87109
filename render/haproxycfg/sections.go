package haproxycfg

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"text/template"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// sectionCache keeps each backend's haproxy.cfg section between renders,
// with the backend it was rendered from, for one template. Both lists are
// sorted by backend name, as Model.Backends is: a render walks them side
// by side.
type sectionCache struct {
	tmpl  *template.Template
	bes   []*render.Backend
	texts [][]byte
	// head, tail and config are the last haproxy.cfg's pieces and
	// whole.
	head, tail, config []byte
}

// allSame is true when a and b hold the same section slices.
func allSame(a, b [][]byte) bool {
	for i := range a {
		if !sameSlice(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sameSection is true when a and b render the same section: the template
// sees a backend's names, port, slots and annotations (backendData),
// nothing else.
func sameSection(a, b *render.Backend) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port &&
		a.PortName == b.PortName && a.Slots == b.Slots && a.Spare == b.Spare && a.OwnName == b.OwnName && (sameSlice(a.SlotAddrs, b.SlotAddrs) || slices.Equal(a.SlotAddrs, b.SlotAddrs)) &&
		samePolicy(a, b)
}

// assembleConfig puts haproxy.cfg together from the main template's output
// (rendered) and one "backend" section per backend where it printed
// .BackendSections.
func assembleConfig(rendered []byte, m *render.Model, cfg Config, cache *sectionCache) ([]byte, *configParts, error) {
	marker := []byte(sectionsMarker)
	switch bytes.Count(rendered, marker) {
	case 0:
		// The template ranges over .Backends itself.
		return rendered, nil, nil
	case 1:
	default:
		return nil, nil, fmt.Errorf("template %s prints .BackendSections more than once", cfg.Template.Name())
	}
	bt := cfg.Template.Lookup(BackendTemplate)
	if bt == nil {
		return nil, nil, fmt.Errorf("template %s prints .BackendSections but no template defines %q", cfg.Template.Name(), BackendTemplate)
	}
	i := bytes.Index(rendered, marker)
	parts := &configParts{Head: rendered[:i], Tail: rendered[i+len(marker):], Sections: make([][]byte, len(m.Backends))}

	var cached sectionCache
	if cache != nil {
		if cache.tmpl != cfg.Template {
			*cache = sectionCache{tmpl: cfg.Template}
		}
		cached = *cache
		// The model is not modified after it is rendered (the engine
		// copies its backend list before a change, and never changes a
		// backend): the next render compares with them where they are.
		cache.bes, cache.texts = m.Backends, parts.Sections
	}
	size := len(parts.Head) + len(parts.Tail)
	var todo []int // sections to render: not in the cache
	if sameSlice(cached.bes, m.Backends) {
		// No backend changed (the engine hands out the same list).
		copy(parts.Sections, cached.texts)
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
				parts.Sections[i] = cached.texts[j]
				j++
			} else {
				todo = append(todo, i)
			}
		}
	}
	if err := renderSections(bt, m.Backends, todo, parts.Sections); err != nil {
		return nil, nil, err
	}
	for _, sec := range parts.Sections {
		size += len(sec)
	}
	if cache != nil && cached.config != nil && bytes.Equal(cached.head, parts.Head) && bytes.Equal(cached.tail, parts.Tail) &&
		len(cached.texts) == len(parts.Sections) && allSame(cached.texts, parts.Sections) {
		// Nothing changed (only maps did): the same file.
		cache.head, cache.tail, cache.config = cached.head, cached.tail, cached.config
		parts.Head, parts.Tail = cached.head, cached.tail
		return cached.config, parts, nil
	}
	config := make([]byte, 0, size)
	config = append(config, parts.Head...)
	for i, s := range parts.Sections {
		// Each section is kept as the piece of the file it is, not as
		// a copy of its own: at 10k backends the copies were megabytes.
		// (Full slice expressions: an append to a piece never writes
		// into the file.)
		at := len(config)
		config = append(config, s...)
		parts.Sections[i] = config[at:len(config):len(config)]
	}
	parts.Head = config[:len(parts.Head):len(parts.Head)]
	at := len(config)
	config = append(config, parts.Tail...)
	parts.Tail = config[at:len(config):len(config)]
	if cache != nil {
		cache.head, cache.tail, cache.config = parts.Head, parts.Tail, config
	}
	return config, parts, nil
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
