package haproxycfg

import (
	"bytes"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Origin names the objects behind a line of a generated file, so that an
// error HAProxy reports at "file:line" can be shown as the Ingress, Service
// or Secret a user has to fix. line is 1-based; line 0 means the whole file.
func (o *Output) Origin(path string, line int) string {
	data := o.Get(path)
	if data == nil {
		return ""
	}
	m := o.model
	switch {
	case path == ConfigFile:
		return o.configOrigin(data, line)
	case path == ExactMapFile || path == PrefixMapFile || path == TLSHostsMapFile || path == CrtListFile:
		// Each entry follows a comment naming its Ingress field (or, in
		// the crt-list, its Secret and Ingresses).
		if l := lineAt(data, line); strings.HasPrefix(l, "# ") {
			return strings.TrimPrefix(l, "# ")
		}
		if line > 1 {
			if l := lineAt(data, line-1); strings.HasPrefix(l, "# ") {
				return strings.TrimPrefix(l, "# ")
			}
		}
		return "generated file " + path
	case path == DefaultCertFile:
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
	return "generated file " + path
}

func certOrigin(c *render.Certificate) string {
	var ings []string
	for _, o := range c.Origins {
		ings = append(ings, o.String())
	}
	slices.Sort(ings)
	return fmt.Sprintf("Secret %s/%s (used by %s)", c.Namespace, c.Secret, strings.Join(slices.Compact(ings), ", "))
}

// configOrigin finds the section a line of haproxy.cfg is in. Service
// backends name their Service and the Ingress paths routed to them; every
// other section comes from the template.
func (o *Output) configOrigin(data []byte, line int) string {
	section := ""
	for i, l := range lines(data) {
		if i+1 > line && line > 0 {
			break
		}
		if len(l) > 0 && l[0] != ' ' && l[0] != '\t' && l[0] != '#' {
			section = string(bytes.TrimSpace(l))
		}
	}
	name, isBackend := strings.CutPrefix(section, "backend ")
	if !isBackend {
		if section == "" {
			return "the configuration template"
		}
		return fmt.Sprintf("the configuration template (section %q)", section)
	}
	i, ok := slices.BinarySearchFunc(o.model.Backends, name, func(b *render.Backend, n string) int { return strings.Compare(b.Name, n) })
	if !ok {
		return fmt.Sprintf("the configuration template (section %q)", section)
	}
	be := o.model.Backends[i]
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
	return fmt.Sprintf("Service %s/%s port %d (used by %s)", be.Namespace, be.Service, be.Port, strings.Join(users, ", "))
}

func lineAt(data []byte, line int) string {
	if line < 1 {
		return ""
	}
	for i, l := range lines(data) {
		if i+1 == line {
			return string(l)
		}
	}
	return ""
}

// lines yields the lines of data (without their newline) and their index,
// as bytes.Split would list them, without making the list: a diff of a
// 10k-Ingress configuration looks lines up for every hunk.
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
