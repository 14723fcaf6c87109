package haproxycfg

import (
	"bytes"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Provenance: the writer knows what it wrote every line of a generated file
// from (a backend section from a render.Backend, a route map's lines from
// a render.Route, a TLS hosts map's from the certificates naming the host,
// a crt-list's from a render.Certificate), so explain, the history's hunks
// and dumps name objects from those values. The comments in the files say
// the same for people; nothing reads them back.

// block is a run of lines of a generated file and what the writer wrote
// them from: a header line (header), a backend section (backend, index
// in Model.Backends), a route's lines (route), a TLS host's (host, with
// hostOrigins), a certificate's (cert, with offered), or, with none of
// these set, the template's own text in haproxy.cfg.
type block struct {
	lines int    // how many lines; the last block takes the rest
	data  []byte // the lines, newlines included

	header      string
	backend     int // -1: none
	route       *render.Route
	host        string
	hostOrigins string
	cert        *render.Certificate
	offered     bool
}

// blocks yields the blocks of a generated file, in order; none for a file
// that is not haproxy.cfg, a map or the crt-list. Without allData only the
// blocks of the template's own text in haproxy.cfg carry their data (the
// only ones whose origin is read from their text), taken from its pieces:
// the file is not put together (at 50k Ingresses /history's diff of each
// pass did, for the origin of its hunks).
func (o *Output) blocks(path string, allData bool) iter.Seq[block] {
	m := o.model
	var gen func(yield func(block) bool)
	switch path {
	case ConfigFile:
		gen = func(yield func(block) bool) {
			p := o.config
			if p == nil {
				// A template that ranges over .Backends itself:
				// all of it is the template's.
				yield(block{lines: -1, backend: -1})
				return
			}
			if !yield(block{lines: bytes.Count(p.Head, nl), backend: -1}) {
				return
			}
			for i, sec := range p.Sections() {
				if !yield(block{lines: bytes.Count(sec, nl), backend: i}) {
					return
				}
			}
			yield(block{lines: -1, backend: -1})
		}
	case ExactMapFile, PrefixMapFile:
		match := render.MatchExact
		if path == PrefixMapFile {
			match = render.MatchPrefix
		}
		gen = func(yield func(block) bool) {
			if !yield(block{lines: 1, backend: -1, header: routeMapHeader}) {
				return
			}
			for _, r := range o.routesOf[match] {
				n := 2 // appendRouteLines: a comment, then the row
				if r.Canary != nil {
					n = 3
				}
				if !yield(block{lines: n, backend: -1, route: r}) {
					return
				}
			}
		}
	case TLSHostsMapFile:
		gen = func(yield func(block) bool) {
			if !yield(block{lines: 1, backend: -1, header: tlsHostsHeader}) {
				return
			}
			hosts, all := mapHostOrigins(m)
			for i, origins := range all {
				n := 1
				if origins != "" {
					n = 2
				}
				if !yield(block{lines: n, backend: -1, host: hosts[i], hostOrigins: origins}) {
					return
				}
			}
		}
	case CrtListFile:
		gen = func(yield func(block) bool) {
			for i, sni := range crtListSNI(m.Certs) {
				n := 1
				if len(sni) > 0 {
					n = 2
				}
				if !yield(block{lines: n, backend: -1, cert: &m.Certs[i], offered: len(sni) > 0}) {
					return
				}
			}
		}
	default:
		gen = func(func(block) bool) {}
	}
	if !allData {
		return func(yield func(block) bool) {
			for b := range gen {
				if path == ConfigFile && b.backend < 0 {
					b.data = o.templateText(b)
				}
				if !yield(b) {
					return
				}
			}
		}
	}
	data := o.Get(path)
	// Each block's lines are cut from the file by counting newlines: the
	// writer made them, so their number is known.
	return func(yield func(block) bool) {
		for b := range gen {
			n := len(data)
			if b.lines >= 0 {
				n = 0
				for range b.lines {
					i := bytes.IndexByte(data[n:], '\n')
					if i < 0 {
						n = len(data)
						break
					}
					n += i + 1
				}
			}
			b.data, data = data[:n], data[n:]
			if !yield(b) {
				return
			}
		}
	}
}

// templateText is the data of a block of haproxy.cfg's own text: the
// head or the tail of the file in pieces, or the whole file when the
// template ranges over .Backends itself.
func (o *Output) templateText(b block) []byte {
	switch {
	case o.config == nil:
		return o.Get(ConfigFile)
	case b.lines >= 0:
		return o.config.Head
	}
	return o.config.Tail
}

var nl = []byte("\n")

// Origin names the objects behind a line of a generated file, so that an
// error HAProxy reports at "file:line" can be shown as the Ingress, Service
// or Secret a user has to fix. line is 1-based; line 0 means the whole file.
func (o *Output) Origin(path string, line int) string {
	if _, ok := o.file(path); !ok {
		return ""
	}
	m := o.model
	switch path {
	case ConfigFile, ExactMapFile, PrefixMapFile, TLSHostsMapFile, CrtListFile:
		if line < 1 {
			break
		}
		if b, k, ok := o.locate(path, line); ok {
			return o.blockOrigin(path, b, k)
		}
		if where, ok := o.walkOrigin(path, line); ok {
			return where
		}
	case DefaultCertFile:
		if c := m.Settings.DefaultCertificate; c != nil {
			return fmt.Sprintf("Secret %s/%s (default-certificate of the settings ConfigMap)", c.Namespace, c.Secret)
		}
		return "the built-in default certificate"
	default:
		for i := range m.Certs {
			if m.Certs[i].File == path {
				return certOrigin(&m.Certs[i])
			}
		}
	}
	if path == ConfigFile {
		return "the configuration template"
	}
	return "generated file " + path
}

// walkOrigin is Origin for a line of a file of blocks, found by walking
// the blocks before it; false past the last one.
func (o *Output) walkOrigin(path string, line int) (string, bool) {
	at := 0 // lines before the block
	for b := range o.blocks(path, false) {
		if b.lines < 0 || line <= at+b.lines {
			return o.blockOrigin(path, b, line-at-1), true
		}
		at += b.lines
	}
	return "", false
}

// locate finds the block of a line (1-based) without walking the blocks
// before it, where their sizes are known: haproxy.cfg in pieces (its
// line index), a route map whose routes have no canary (two lines each
// after the header). ok is false elsewhere: the caller walks the blocks.
// A line past the last block is not located.
func (o *Output) locate(path string, line int) (b block, k int, ok bool) {
	switch path {
	case ConfigFile:
		p := o.config
		if p == nil {
			return block{}, 0, false
		}
		idx := p.lineIndex()
		if line <= idx.head {
			b = block{lines: idx.head, backend: -1}
			b.data = o.templateText(b)
			return b, line - 1, true
		}
		i, _ := slices.BinarySearch(idx.ends, line) // the first section ending at or after line
		if i == len(idx.ends) {
			before := idx.head
			if len(idx.ends) > 0 {
				before = idx.ends[len(idx.ends)-1]
			}
			b = block{lines: -1, backend: -1}
			b.data = o.templateText(b)
			return b, line - before - 1, true
		}
		before := idx.head
		if i > 0 {
			before = idx.ends[i-1]
		}
		return block{lines: idx.ends[i] - before, backend: i}, line - before - 1, true
	case ExactMapFile, PrefixMapFile:
		if !o.model.CanaryFree() {
			return block{}, 0, false
		}
		match := render.MatchExact
		if path == PrefixMapFile {
			match = render.MatchPrefix
		}
		if line == 1 {
			return block{lines: 1, backend: -1, header: routeMapHeader}, 0, true
		}
		routes := o.routesOf[match]
		if i := (line - 2) / 2; i < len(routes) {
			return block{lines: 2, backend: -1, route: routes[i]}, (line - 2) % 2, true
		}
	}
	return block{}, 0, false
}

// blockOrigin names what line k (0-based) of block b comes from: a
// comment line's own words, and for a row those of the comment above it
// (as the file says to people).
func (o *Output) blockOrigin(path string, b block, k int) string {
	switch {
	case b.header != "":
		return strings.TrimSuffix(strings.TrimPrefix(b.header, "# "), "\n")
	case b.backend >= 0:
		return o.backendOrigin(o.model.Backends[b.backend])
	case b.route != nil:
		r := b.route
		if k == 0 || r.Canary == nil {
			return string(appendService(append(appendOrigin(nil, r.Origin), " -> "...), r.Service))
		}
		return "canary " + string(appendService(append(appendOrigin(nil, r.Canary.Origin), " -> "...), r.Canary.Service))
	case b.host != "":
		if b.hostOrigins == "" {
			return "generated file " + path
		}
		return b.hostOrigins
	case b.cert != nil:
		if !b.offered {
			return certOrigin(b.cert) + notOffered
		}
		return certOrigin(b.cert)
	}
	// The template's own text: the section it is in.
	return o.templateOrigin(b.data, k)
}

func certOrigin(c *render.Certificate) string {
	var ings []string
	for _, o := range c.Origins {
		ings = append(ings, o.String())
	}
	slices.Sort(ings)
	return fmt.Sprintf("Secret %s/%s (used by %s)", c.Namespace, c.Secret, strings.Join(slices.Compact(ings), ", "))
}

// templateOrigin names line k (0-based) of text the template wrote itself
// by the section it is in, from the section's keyword line. That is
// HAProxy's syntax in the template's text, not provenance read back: the
// template's text comes from no object. A template that ranges over
// .Backends itself writes backend sections too: those name their
// Service.
func (o *Output) templateOrigin(text []byte, k int) string {
	section := ""
	for i, l := range lines(text) {
		if i > k {
			break
		}
		if len(l) > 0 && l[0] != ' ' && l[0] != '\t' && l[0] != '#' {
			section = string(bytes.TrimSpace(l))
		}
	}
	if section == "" {
		return "the configuration template"
	}
	if name, ok := strings.CutPrefix(section, "backend "); ok && o.config == nil {
		bes := o.model.Backends
		if i, found := slices.BinarySearchFunc(bes, name, func(b *render.Backend, n string) int { return strings.Compare(b.Name, n) }); found {
			return o.backendOrigin(bes[i])
		}
	}
	return fmt.Sprintf("the configuration template (section %q)", section)
}

// backendOrigin names a backend's Service and the Ingress paths routed to
// it.
func (o *Output) backendOrigin(be *render.Backend) string {
	var users []string
	for _, r := range o.model.Routes {
		if r.Backend == be.Name {
			users = append(users, r.Origin.String())
		}
		if r.Canary != nil && r.Canary.Backend == be.Name {
			users = append(users, r.Canary.Origin.String())
		}
	}
	if d := o.model.DefaultOrigin; d != nil && o.model.DefaultBackend == be.Name {
		users = append(users, d.String())
	}
	for _, o := range o.model.Backends {
		if o.ErrorBackend == be.Name && o.Name != be.Name && !slices.Contains(users, "custom-http-errors of Ingress "+o.Namespace+"/"+o.Ingress) {
			users = append(users, "custom-http-errors of Ingress "+o.Namespace+"/"+o.Ingress)
		}
	}
	if be.RedirectHost != "" {
		return fmt.Sprintf("the from-to-www-redirect to %s (of %s)", be.RedirectHost, strings.Join(users, ", "))
	}
	return fmt.Sprintf("Service %s/%s port %d (used by %s)", be.Namespace, be.Service, be.Port, strings.Join(users, ", "))
}

// lines yields the lines of data (without their newline) and their index,
// as bytes.Split would list them, without making the list.
func lines(data []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		for i := 0; ; i++ {
			j := bytes.IndexByte(data, '\n')
			if j < 0 {
				yield(i, data)
				return
			}
			if !yield(i, data[:j]) {
				return
			}
			data = data[j+1:]
		}
	}
}
