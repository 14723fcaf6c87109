package render

import (
	"bytes"
	"fmt"
	"slices"
	"text/template"
)

// sectionCache keeps each backend's haproxy.cfg section between renders,
// with the backend it was rendered from, for one template.
type sectionCache struct {
	tmpl   *template.Template
	byName map[string]cachedSection
}

type cachedSection struct {
	be   Backend
	text []byte
}

// sameSection is true when a and b render the same section: the template
// sees a backend's names, port and slots (backendData), nothing else.
func sameSection(a, b *Backend) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port &&
		a.PortName == b.PortName && a.Slots == b.Slots && slices.Equal(a.SlotAddrs, b.SlotAddrs)
}

// assembleConfig puts haproxy.cfg together from the main template's output
// (rendered) and one "backend" section per backend where it printed
// .BackendSections.
func assembleConfig(rendered []byte, m *Model, cfg Config, cache *sectionCache) ([]byte, *ConfigParts, error) {
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
	parts := &ConfigParts{Head: rendered[:i], Tail: rendered[i+len(marker):], Sections: make([][]byte, len(m.Backends))}

	var next map[string]cachedSection
	if cache != nil {
		if cache.tmpl != cfg.Template {
			cache.tmpl, cache.byName = cfg.Template, nil
		}
		next = make(map[string]cachedSection, len(m.Backends))
	}
	size := len(parts.Head) + len(parts.Tail)
	var buf bytes.Buffer
	for i := range m.Backends {
		be := &m.Backends[i]
		if cache != nil {
			if c, ok := cache.byName[be.Name]; ok && sameSection(&c.be, be) {
				parts.Sections[i] = c.text
				next[be.Name] = c
				size += len(c.text)
				continue
			}
		}
		buf.Reset()
		if err := bt.Execute(&buf, backendData(be)); err != nil {
			return nil, nil, fmt.Errorf("executing template %q for backend %s: %w", BackendTemplate, be.Name, err)
		}
		text := bytes.Clone(buf.Bytes())
		parts.Sections[i] = text
		size += len(text)
		if cache != nil {
			next[be.Name] = cachedSection{be: cloneBackend(be), text: text}
		}
	}
	if cache != nil {
		cache.byName = next
	}
	config := make([]byte, 0, size)
	config = append(config, parts.Head...)
	for _, s := range parts.Sections {
		config = append(config, s...)
	}
	config = append(config, parts.Tail...)
	return config, parts, nil
}

// cloneBackend copies the slices a cached section is compared by, so that
// the cache never depends on a model someone else holds.
func cloneBackend(be *Backend) Backend {
	c := *be
	c.Servers = slices.Clone(be.Servers)
	c.SlotAddrs = slices.Clone(be.SlotAddrs)
	return c
}
