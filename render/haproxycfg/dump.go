package haproxycfg

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Selector picks what one Ingress or one host produced.
type Selector struct {
	// Ingress is "namespace/name".
	Ingress string
	// Host is a request host: routes for it exactly, and wildcard routes
	// that cover it.
	Host string
}

func (s Selector) String() string {
	if s.Ingress != "" {
		return "Ingress " + s.Ingress
	}
	return "host " + s.Host
}

// Select returns, file by file, the lines sel produced: its backend
// sections of haproxy.cfg, its rows of every map, its crt-list rows and
// its certificates (through DescribePEM: never key bytes). Each row keeps
// the provenance comment above it. Files it produced nothing in are left
// out.
func (o *Output) Select(sel Selector) []File {
	m := o.model
	keys := map[string]bool{}
	backends := map[string]bool{}
	for _, r := range m.Routes {
		if sel.matchesRoute(r) {
			keys[r.Key] = true
			backends[r.Backend] = true
			if r.Canary != nil {
				backends[r.Canary.Backend] = true
			}
		}
	}
	if d := m.DefaultOrigin; d != nil && sel.Ingress == d.Namespace+"/"+d.Name {
		backends[m.DefaultBackend] = true
	}
	var certs []*render.Certificate
	tlsHosts := map[string]bool{}
	for i := range m.Certs {
		c := &m.Certs[i]
		if sel.matchesCert(c) {
			certs = append(certs, c)
			for _, h := range c.SNI {
				if sel.Host == "" || hostCovers(h, sel.Host) {
					tlsHosts[h] = true
				}
			}
		}
	}

	var out []File
	add := func(path string, data []byte) {
		if len(data) > 0 {
			out = append(out, File{Path: path, data: data})
		}
	}
	add(ConfigFile, o.selectedSections(backends))
	add(CrtListFile, o.selectBlocks(CrtListFile, func(b block) bool { return slices.Contains(certs, b.cert) }))
	for _, c := range certs {
		add(c.File, []byte(DescribePEM(o.Get(c.File))))
	}
	for _, name := range []string{ExactMapFile, PrefixMapFile} {
		add(name, o.selectBlocks(name, func(b block) bool { return b.route != nil && keys[b.route.Key] }))
	}
	// Passed-through hosts: their rows of the SNI map, and of the TLS
	// hosts map (their plain-HTTP requests are redirected).
	var passed []*render.Route
	for _, r := range m.Passthrough {
		if sel.matchesRoute(r) {
			passed = append(passed, r)
			tlsHosts[r.Host] = true
		}
	}
	if len(passed) > 0 {
		add(PassthroughMapFile, passthroughMap(passed))
	}
	add(TLSHostsMapFile, o.selectBlocks(TLSHostsMapFile, func(b block) bool { return b.host != "" && tlsHosts[b.host] }))
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func (s Selector) matchesRoute(r *render.Route) bool {
	if s.Ingress != "" {
		return r.Origin.Namespace+"/"+r.Origin.Name == s.Ingress ||
			(r.Canary != nil && r.Canary.Origin.Namespace+"/"+r.Canary.Origin.Name == s.Ingress)
	}
	return r.Host != "" && hostCovers(r.Host, s.Host)
}

func (s Selector) matchesCert(c *render.Certificate) bool {
	if s.Ingress != "" {
		return slices.ContainsFunc(c.Origins, func(o render.Origin) bool { return o.Namespace+"/"+o.Name == s.Ingress })
	}
	return slices.ContainsFunc(c.SNI, func(h string) bool { return hostCovers(h, s.Host) })
}

// hostCovers reports whether a rule's host (exact or "*.suffix") serves a
// request for host: a wildcard covers exactly one more label.
func hostCovers(rule, host string) bool {
	host = strings.ToLower(host)
	if rule == host {
		return true
	}
	suffix, ok := strings.CutPrefix(rule, "*")
	if !ok {
		return false
	}
	first, rest, found := strings.Cut(host, ".")
	return found && first != "" && "."+rest == suffix
}

// selectBlocks returns the lines of the blocks of a generated file that
// keep accepts: a map row or crt-list line with the comments the writer
// put above it.
func (o *Output) selectBlocks(path string, keep func(block) bool) []byte {
	var out []byte
	for b := range o.blocks(path, true) {
		if keep(b) {
			out = append(out, b.data...)
		}
	}
	return out
}

// selectedSections returns the backend sections of haproxy.cfg of the
// backends named, one after the other with a blank line between, without
// password hashes (RedactConfig). A section is what the template's
// "backend" wrote for the backend: its comment, its userlist if it has
// one, and the backend.
func (o *Output) selectedSections(names map[string]bool) []byte {
	if o.config == nil {
		// A template that ranges over .Backends itself: which lines
		// are whose is the template's, read from its sections.
		return backendSections(o.Get(ConfigFile), names)
	}
	var out []byte
	for b := range o.blocks(ConfigFile, true) {
		if b.backend < 0 || !names[o.model.Backends[b.backend].Name] {
			continue
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, bytes.TrimLeft(b.data, "\n")...)
	}
	return RedactConfig(out)
}

// backendSections returns the "backend NAME" sections of haproxy.cfg for
// the names given, each with the comment lines right above it, for a
// template that writes the backend sections itself.
func backendSections(cfg []byte, names map[string]bool) []byte {
	var b bytes.Buffer
	var comments []string
	in := false
	for line := range strings.Lines(string(cfg)) {
		trimmed := strings.TrimSuffix(line, "\n")
		switch {
		case trimmed == "":
			if in {
				b.WriteString("\n")
			}
			in, comments = false, comments[:0]
		case strings.HasPrefix(trimmed, "#") && !in:
			comments = append(comments, trimmed)
		case trimmed[0] != ' ' && trimmed[0] != '\t':
			name, isBackend := strings.CutPrefix(trimmed, "backend ")
			in = isBackend && names[name]
			if in {
				for _, c := range comments {
					fmt.Fprintln(&b, c)
				}
				fmt.Fprintln(&b, trimmed)
			}
			comments = comments[:0]
		case in:
			fmt.Fprintln(&b, trimmed)
		}
	}
	if out := bytes.TrimRight(b.Bytes(), "\n"); len(out) > 0 {
		return append(out, '\n')
	}
	return nil
}
