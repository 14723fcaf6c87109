package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// DumpQuery says which part of a configuration to print: the whole
// haproxy.cfg (zero value), one generated file, or what one Ingress or
// host produced.
type DumpQuery struct {
	File     string
	Selector haproxycfg.Selector
}

// ErrNotFound means the query names nothing in the configuration.
var ErrNotFound = errors.New("not found")

// Dump prints part of out as DumpQuery says. Certificates are shown
// through haproxycfg.DescribePEM: a dump never holds key bytes. For an Ingress,
// the problems reported on it follow what it produced (or stand alone when
// it produced nothing: the question is then why).
func Dump(out *haproxycfg.Output, problems []render.Problem, q DumpQuery) (string, error) {
	switch {
	case q.File != "":
		data := out.Get(q.File)
		if data == nil {
			var names []string
			for _, f := range out.Files {
				names = append(names, f.Path)
			}
			return "", fmt.Errorf("%w: no generated file %q (there are: %s)", ErrNotFound, q.File, strings.Join(names, ", "))
		}
		return shown(q.File, data), nil
	case q.Selector != haproxycfg.Selector{}:
		files := out.Select(q.Selector)
		var own []render.Problem
		if ns, name, ok := strings.Cut(q.Selector.Ingress, "/"); ok {
			for _, p := range problems {
				if p.Kind == "Ingress" && p.Namespace == ns && p.Name == name {
					own = append(own, p)
				}
			}
		}
		if len(files) == 0 && len(own) == 0 {
			return "", fmt.Errorf("%w: nothing in the configuration comes from %s", ErrNotFound, q.Selector)
		}
		var b strings.Builder
		for i, f := range files {
			if i > 0 {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "# ==> %s <== (from %s)\n", f.Path, q.Selector)
			b.Write(f.Data())
		}
		if len(own) > 0 {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "# ==> problems of %s <==\n", q.Selector)
			for _, p := range own {
				fmt.Fprintf(&b, "%s [%s]\n", p.Report(), p.Reason)
			}
		}
		return b.String(), nil
	default:
		return shown(haproxycfg.ConfigFile, out.Get(haproxycfg.ConfigFile)), nil
	}
}

// Served returns the files HAProxy runs now (or, before HAProxy is up,
// the ones written for it to start on); nil before the first pass.
func (c *Controller) Served() *haproxycfg.Output {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil {
		return c.current.out
	}
	return c.out
}
