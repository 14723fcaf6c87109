package haproxycfg

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// renderGolden renders every golden case (testdata/<case>/manifests.yaml)
// with the embedded template.
func renderGolden(t *testing.T) map[string]*Output {
	t.Helper()
	cases, err := filepath.Glob("../../testdata/*/manifests.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]*Output{}
	for _, c := range cases {
		in, _, err := manifest.Load(c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Render(render.BuildModel(in, render.Options{}), Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		outs[filepath.Base(filepath.Dir(c))] = out
	}
	return outs
}

// Provenance is a value the writer keeps, and it says what the files say
// to people: in the maps and the crt-list, a comment line's origin is its
// own words and a row's those of the comment above it; in haproxy.cfg,
// every line of a backend section (its comment, userlist and backend)
// names the backend's Service, and the template's own lines name the
// template.
func TestOriginIsWhatTheFilesSay(t *testing.T) {
	for name, out := range renderGolden(t) {
		for _, path := range []string{ExactMapFile, PrefixMapFile, TLSHostsMapFile, CrtListFile} {
			ls := strings.Split(strings.TrimSuffix(string(out.Get(path)), "\n"), "\n")
			for i, l := range ls {
				want, ok := strings.CutPrefix(l, "# ")
				if !ok && i > 0 {
					want, ok = strings.CutPrefix(ls[i-1], "# ")
				}
				if !ok || l == "" {
					continue
				}
				if got := out.Origin(path, i+1); got != want {
					t.Errorf("%s: %s:%d (%q): origin %q, want %q", name, path, i+1, l, got, want)
				}
			}
		}
		cfg := out.Get(ConfigFile)
		sections := 0
		for i, l := range strings.Split(string(cfg), "\n") {
			got := out.Origin(ConfigFile, i+1)
			bname, isBackend := strings.CutPrefix(l, "backend ")
			if !isBackend {
				continue
			}
			if be := backendNamed(out.model, bname); be != nil {
				sections++
				if want := "Service " + be.Namespace + "/" + be.Service + " port "; !strings.HasPrefix(got, want) {
					t.Errorf("%s: haproxy.cfg:%d (%q): origin %q, want %q...", name, i+1, l, got, want)
				}
				// The section's comment above it too.
				if above := out.Origin(ConfigFile, i); above != got {
					t.Errorf("%s: haproxy.cfg:%d: origin %q, want the section's %q", name, i, above, got)
				}
			} else if want := "the configuration template (section \"" + l + "\")"; got != want {
				t.Errorf("%s: haproxy.cfg:%d (%q): origin %q, want %q", name, i+1, l, got, want)
			}
		}
		if sections != len(out.model.Backends) {
			t.Errorf("%s: %d backend sections named, want %d", name, sections, len(out.model.Backends))
		}
	}
}

// Origin finds a line of haproxy.cfg and of a route map without canaries
// by its place (locate); it says what walking every block before the line
// says, for every line of every golden case, and the lines around them.
func TestOriginLocatedAsWalked(t *testing.T) {
	located := 0
	for name, out := range renderGolden(t) {
		for _, path := range []string{ConfigFile, ExactMapFile, PrefixMapFile} {
			n := bytes.Count(out.Get(path), []byte("\n"))
			for line := 1; line <= n+2; line++ {
				walked, ok := out.walkOrigin(path, line)
				b, k, found := out.locate(path, line)
				if !found {
					continue
				}
				located++
				if got := out.blockOrigin(path, b, k); !ok || got != walked {
					t.Errorf("%s: %s:%d: located %q, walked %q (found %v)", name, path, line, got, walked, ok)
				}
			}
		}
	}
	if located < 1000 {
		t.Errorf("%d lines located: the golden cases should give more", located)
	}
}

func backendNamed(m *render.Model, name string) *render.Backend {
	for _, be := range m.Backends {
		if be.Name == name {
			return be
		}
	}
	return nil
}

// A dump of one Ingress holds its backend sections whole, userlist
// included but never a password hash, its map rows with their comments,
// and nothing of another Ingress's.
func TestSelectFromValues(t *testing.T) {
	out := renderGolden(t)["auth-limits"]
	files := map[string]string{}
	for _, f := range out.Select(Selector{Ingress: "default/team"}) {
		files[f.Path] = string(f.Data())
	}
	cfg := files[ConfigFile]
	for _, want := range []string{"# Users of the auth-basic-secret of Ingress default/team\nuserlist auth_default_web_80_team\n",
		"    user 'alice' password <hash not shown>\n", "backend default_web_80:team\n    balance roundrobin\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg of Ingress default/team lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "$2y$") || strings.Contains(cfg, "crowd") || strings.HasPrefix(cfg, "\n") {
		t.Errorf("haproxy.cfg of Ingress default/team:\n%s", cfg)
	}
	prefix := files[PrefixMapFile]
	if !strings.HasPrefix(prefix, "# Ingress default/team ") || strings.Contains(prefix, "crowd") || strings.Contains(prefix, "Generated by") {
		t.Errorf("prefix map of Ingress default/team:\n%s", prefix)
	}
	// Each row with its comment, as in the file.
	for l := range strings.Lines(prefix) {
		if !strings.HasPrefix(l, "#") && !bytes.Contains(out.Get(PrefixMapFile), []byte(l)) {
			t.Errorf("row %q is not in the file", l)
		}
	}
}
