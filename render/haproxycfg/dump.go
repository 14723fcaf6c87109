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
			out = append(out, File{Path: path, Data: data})
		}
	}
	add(ConfigFile, backendSections(o.Get(ConfigFile), backends))
	add(CrtListFile, rowsWithComments(o.Get(CrtListFile), func(row string) bool {
		file, _, _ := strings.Cut(row, " ")
		return slices.ContainsFunc(certs, func(c *render.Certificate) bool { return c.File == file })
	}))
	for _, c := range certs {
		add(c.File, []byte(DescribePEM(o.Get(c.File))))
	}
	for _, name := range []string{ExactMapFile, PrefixMapFile} {
		add(name, rowsWithComments(o.Get(name), func(row string) bool {
			key, _, _ := strings.Cut(row, " ")
			return keys[key]
		}))
	}
	add(TLSHostsMapFile, rowsWithComments(o.Get(TLSHostsMapFile), func(row string) bool {
		host, _, _ := strings.Cut(row, " ")
		return tlsHosts[host]
	}))
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

// rowsWithComments keeps the rows keep accepts, each with the comment
// lines right above it.
func rowsWithComments(data []byte, keep func(row string) bool) []byte {
	var b bytes.Buffer
	var comments []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "#") {
			comments = append(comments, line)
			continue
		}
		if line != "" && keep(line) {
			for _, c := range comments {
				b.WriteString(c + "\n")
			}
			b.WriteString(line + "\n")
		}
		comments = comments[:0]
	}
	return b.Bytes()
}

// backendSections returns the "backend NAME" sections of haproxy.cfg for
// the names given, each with the comment lines right above it.
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
