package haproxycfg

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"text/template"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// manyBackends is a model with n Service backends and no routes.
func manyBackends(n int) *render.Model {
	m := &render.Model{DefaultBackend: render.NotFoundBackend}
	for i := range n {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i % 256)}), 8080)
		m.Backends = append(m.Backends, &render.Backend{Name: fmt.Sprintf("b%05d", i), Namespace: "default", Service: fmt.Sprintf("s%05d", i), Port: 80,
			Servers: []netip.AddrPort{addr}, Slots: 4, SlotAddrs: []netip.AddrPort{addr, {}, {}, {}}})
	}
	return m
}

// Sections rendered on every core make the same file as one by one.
func TestParallelSectionsSameFile(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	m := manyBackends(3000)
	par, err := Render(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int) { parallelSections = n }(parallelSections)
	parallelSections = 1 << 30
	seq, err := Render(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(par.Get(ConfigFile), seq.Get(ConfigFile)) {
		t.Error("haproxy.cfg rendered in parallel differs from the one rendered in order")
	}
}

// A template failing on several backends reports the first one, however
// the work was shared.
func TestParallelSectionsFirstError(t *testing.T) {
	bt := template.Must(template.New(BackendTemplate).Parse(`backend {{.Name}}{{if or (eq .Name "b00700") (eq .Name "b02901")}}{{.NoSuchField}}{{end}}` + "\n"))
	m := manyBackends(3000)
	todo := make([]int, len(m.Backends))
	for i := range todo {
		todo[i] = i
	}
	for range 5 {
		err := renderSections(bt, m.Backends, todo, make([][]byte, len(m.Backends)))
		if err == nil || !strings.Contains(err.Error(), "backend b00700:") {
			t.Fatalf("error %v, want the one of backend b00700", err)
		}
	}
}
