package render_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// problemsFile is the golden list of problems next to the generated files.
const problemsFile = "problems.txt"

// renderCase renders testdata/<name>/manifests.yaml with default flags and
// the case's settings ConfigMap, if any (see caseOptions).
func renderCase(t testing.TB, dir string, shuffle *rand.Rand) (*render.Model, *haproxycfg.Output, []render.Problem) {
	t.Helper()
	in, loadProblems, err := manifest.Load(filepath.Join(dir, "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if shuffle != nil {
		shuffleInputs(shuffle, &in)
	}
	return renderInputs(t, in, caseConfig(t, dir), loadProblems)
}

// statsBindFile, in a case directory, holds a --stats-bind address: the case
// is rendered with the stats frontend, as by an HAProxy that has the
// Prometheus exporter (both tested versions have it).
const statsBindFile = "stats-bind"

// caseConfig is the haproxycfg.Config of a case: the default binds, plus the
// stats frontend when the case has a stats-bind file.
func caseConfig(t testing.TB, dir string) haproxycfg.Config {
	t.Helper()
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443"}
	b, err := os.ReadFile(filepath.Join(dir, statsBindFile))
	switch {
	case err == nil:
		cfg.StatsBind, cfg.PrometheusExporter = strings.TrimSpace(string(b)), true
	case !os.IsNotExist(err):
		t.Fatal(err)
	}
	return cfg
}

func renderInputs(t testing.TB, in render.Inputs, cfg haproxycfg.Config, loadProblems []render.Problem) (*render.Model, *haproxycfg.Output, []render.Problem) {
	t.Helper()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Template = tmpl
	m := render.BuildModel(in, caseOptions(in))
	out, err := haproxycfg.Render(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, out, append(slices.Clone(loadProblems), m.Problems...)
}

// SettingsConfigMap is the settings ConfigMap of the test cases: a case
// that has a ConfigMap default/haproxy-sidecar is rendered as with
// `render --configmap default/haproxy-sidecar`; other cases get no settings
// ConfigMap (and so no notice that it is missing).
const SettingsConfigMap = "default/haproxy-sidecar"

// TCPServicesConfigMap is the TCP services ConfigMap of the test cases: a
// case that has a ConfigMap default/tcp-services is rendered as with
// `render --tcp-services-configmap default/tcp-services`, the ports of
// caseConfig's listeners reserved.
const TCPServicesConfigMap = "default/tcp-services"

func caseOptions(in render.Inputs) render.Options {
	var opts render.Options
	for _, c := range in.ConfigMaps {
		switch c.Namespace + "/" + c.Name {
		case SettingsConfigMap:
			opts.SettingsConfigMap = SettingsConfigMap
		case TCPServicesConfigMap:
			opts.TCPServicesConfigMap = TCPServicesConfigMap
			opts.ReservedPorts = []render.ReservedPort{{Name: render.ListenerHTTP, Port: 80}, {Name: render.ListenerHTTPS, Port: 443}, {Name: "stats", Port: 8404}}
		}
	}
	return opts
}

func shuffleInputs(r *rand.Rand, in *render.Inputs) {
	sh := func(n int, swap func(i, j int)) { r.Shuffle(n, swap) }
	sh(len(in.Ingresses), func(i, j int) { in.Ingresses[i], in.Ingresses[j] = in.Ingresses[j], in.Ingresses[i] })
	sh(len(in.IngressClasses), func(i, j int) {
		in.IngressClasses[i], in.IngressClasses[j] = in.IngressClasses[j], in.IngressClasses[i]
	})
	sh(len(in.Services), func(i, j int) { in.Services[i], in.Services[j] = in.Services[j], in.Services[i] })
	sh(len(in.EndpointSlices), func(i, j int) {
		in.EndpointSlices[i], in.EndpointSlices[j] = in.EndpointSlices[j], in.EndpointSlices[i]
	})
	sh(len(in.Secrets), func(i, j int) { in.Secrets[i], in.Secrets[j] = in.Secrets[j], in.Secrets[i] })
	sh(len(in.ConfigMaps), func(i, j int) { in.ConfigMaps[i], in.ConfigMaps[j] = in.ConfigMaps[j], in.ConfigMaps[i] })
}

func problemsText(ps []render.Problem) []byte {
	var b bytes.Buffer
	for _, p := range ps {
		b.WriteString(p.Report() + "\n")
	}
	return b.Bytes()
}

func goldenCases(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("../testdata/*/manifests.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

// writeFiles puts an output on disk the way `render --out` does.
func writeFiles(t testing.TB, dir string, out *haproxycfg.Output) {
	t.Helper()
	for _, f := range out.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGolden compares every testdata case with its expected files, checks
// that the output does not depend on input order, and has a real HAProxy
// accept every golden configuration.
func TestGolden(t *testing.T) {
	for _, dir := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, out, problems := renderCase(t, dir, nil)
			checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, caseConfig(t, dir))
			// Programs read the reason, so every problem has one from the
			// closed set, whether manifest or render created it.
			for _, p := range problems {
				if !p.Reason.Known() {
					t.Errorf("problem with reason %q, not one of render.Reasons(): %s", p.Reason, p.Report())
				}
			}
			got := map[string][]byte{problemsFile: problemsText(problems)}
			for _, f := range out.Files {
				got[f.Path] = f.Data()
			}
			expDir := filepath.Join(dir, "expected")
			if *testenv.Update {
				if err := os.RemoveAll(expDir); err != nil {
					t.Fatal(err)
				}
				for p, data := range got {
					path := filepath.Join(expDir, filepath.FromSlash(p))
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			var onDisk []string
			err := filepath.WalkDir(expDir, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(expDir, p)
				onDisk = append(onDisk, filepath.ToSlash(rel))
				return nil
			})
			if err != nil {
				t.Fatalf("reading %s (run go test ./render -update to create it): %v", expDir, err)
			}
			for _, p := range onDisk {
				if _, ok := got[p]; !ok {
					t.Errorf("%s: expected file is no longer generated", p)
				}
			}
			for p, data := range got {
				want, err := os.ReadFile(filepath.Join(expDir, filepath.FromSlash(p)))
				if err != nil {
					t.Errorf("%s: generated but not in %s (run with -update): %v", p, expDir, err)
					continue
				}
				if !bytes.Equal(data, want) {
					t.Errorf("%s differs from the golden file (run with -update to accept):\n%s", p, lineDiff(string(want), string(data)))
				}
			}

			// Same objects in other orders: byte-identical output.
			for seed := uint64(1); seed <= 3; seed++ {
				_, out2, problems2 := renderCase(t, dir, rand.New(rand.NewPCG(seed, seed)))
				if !slices.EqualFunc(out.Files, out2.Files, func(a, b haproxycfg.File) bool {
					return a.Path == b.Path && bytes.Equal(a.Data(), b.Data())
				}) {
					t.Errorf("shuffled input (seed %d) gives a different output", seed)
				}
				if !bytes.Equal(problemsText(problems), problemsText(problems2)) {
					t.Errorf("shuffled input (seed %d) gives different problems", seed)
				}
			}

			tmp := t.TempDir()
			writeFiles(t, tmp, out)
			for version, bin := range testenv.HAProxies(t) {
				if err := reload.Check(context.Background(), bin, filepath.Join(tmp, haproxycfg.ConfigFile)); err != nil {
					t.Errorf("haproxy %s -c rejects the golden configuration: %v", version, err)
				}
			}
		})
	}
}

// lineDiff shows the first lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("  line " + strconv.Itoa(i+1) + ":\n    want: " + wl + "\n    got:  " + gl + "\n")
			shown++
		}
	}
	return b.String()
}

// explain names the canary of a route and what it takes; the answer stays
// the primary's (explain does not draw the weight).
func TestExplainCanary(t *testing.T) {
	m, _, _ := renderCase(t, "../testdata/canary", nil)
	e := m.Explain(render.Request{Host: "shop.example.com", Path: "/x"})
	got := e.String()
	for _, want := range []string{
		// The primary has no route annotations: the canary's backend is
		// its Service's plain one.
		"canary: Ingress shop/web-canary spec.rules[0].http.paths[0], Service shop/web-v2 port http (backend shop_web-v2_80), takes requests with header X-Canary: v2, then 20 of 100 of the remaining requests at random; the rest stays on the route's backend below",
		"=> backend shop_web_80 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explain:\n%s\nwant a line with %q", got, want)
		}
	}
}
