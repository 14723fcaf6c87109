package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, nil, &o, &e)
	return code, o.String(), e.String()
}

func TestRenderStdout(t *testing.T) {
	code, out, errs := runCLI(t, "render", "--manifests", "testdata/hosts/manifests.yaml", "--stdout",
		"--haproxy", testenv.HAProxy26(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := os.ReadFile("testdata/hosts/expected/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("--stdout differs from the golden configuration")
	}
}

func TestRenderOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	for version, bin := range testenv.HAProxies(t) {
		code, _, errs := runCLI(t, "render", "--manifests", "testdata/bad-input", "--out", dir, "--haproxy", bin)
		if code != 0 {
			t.Fatalf("haproxy %s: exit %d: %s", version, code, errs)
		}
		// Problems are reported on stderr, by object and field.
		for _, w := range []string{
			`warning: Ingress default/mixed: spec.rules[0].http.paths[3].path: "/a b"`,
			"warning: Ingress default/mixed: spec.tls[1].secretName: Secret default/mismatched-tls",
			"notice: File testdata/bad-input/manifests.yaml (document 6): kind example.com/v1, Kind=Widget is not used",
		} {
			if !strings.Contains(errs, w) {
				t.Errorf("stderr lacks %q:\n%s", w, errs)
			}
		}
	}
	for _, f := range []string{"haproxy.cfg", "maps/exact.map", "maps/prefix.map", "crt-list.txt", "certs/default_hostile-tls.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}

	// Render again over an earlier render: a certificate it wrote that is
	// no longer rendered is removed, a file it did not write stays, and a
	// key file gets 0600 whatever mode it had.
	cert := filepath.Join(dir, "certs", "default_hostile-tls.pem")
	if err := os.Chmod(cert, 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "certs", "default_gone.pem")
	mine := filepath.Join(dir, "certs", "notes.txt")
	for _, f := range []string{stale, mine} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list := filepath.Join(dir, ".haproxy-sidecar-files")
	owned, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, append(owned, "certs/default_gone.pem\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "render", "--manifests", "testdata/bad-input", "--out", dir, "--no-validate"); code != 0 {
		t.Fatalf("second render: exit %d: %s", code, errs)
	}
	if st, err := os.Stat(cert); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("certificate: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale certificate kept: %v", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a file render did not write was removed: %v", err)
	}

	// A directory with files render did not write is refused, untouched.
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "important.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "render", "--manifests", "testdata/bad-input", "--out", foreign, "--no-validate")
	if code != 1 || !strings.Contains(errs, foreign+" is not empty") {
		t.Errorf("render into a foreign directory: exit %d, stderr:\n%s", code, errs)
	}
	if entries, _ := os.ReadDir(foreign); len(entries) != 1 {
		t.Errorf("render wrote into a foreign directory: %v", entries)
	}
}

// An HAProxy error is shown with the object behind the failing line.
func TestRenderValidationNamesTheObject(t *testing.T) {
	tmplDir := t.TempDir()
	// A user template with a directive HAProxy refuses in every backend.
	src, err := os.ReadFile("templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), "    balance {{.Balance}}\n", "    balance {{.Balance}}\n    no-such-directive here\n", 1)
	if broken == string(src) {
		t.Fatal("template changed: no balance line to break")
	}
	if err := os.WriteFile(filepath.Join(tmplDir, templates.Main), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	for version, bin := range testenv.HAProxies(t) {
		code, _, errs := runCLI(t, "render", "--manifests", "testdata/conflicts", "--out", t.TempDir(),
			"--templates", tmplDir, "--haproxy", bin)
		if code != 1 {
			t.Fatalf("haproxy %s: exit %d, want 1: %s", version, code, errs)
		}
		for _, w := range []string{"HAProxy rejected the configuration", "no-such-directive",
			"caused by Service default/newer port 80 (used by Ingress default/newer spec.rules[0].http.paths[1])"} {
			if !strings.Contains(errs, w) {
				t.Errorf("haproxy %s: stderr lacks %q:\n%s", version, w, errs)
			}
		}
	}
}

// A template whose lua-load never returns makes haproxy -c run without
// end: render stops it at --haproxy-check-timeout and fails, naming the
// deadline and the templates, instead of hanging.
func TestRenderCheckDeadline(t *testing.T) {
	src, err := os.ReadFile("templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	lua := filepath.Join(t.TempDir(), "hang.lua")
	if err := os.WriteFile(lua, []byte("while true do end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const anchor = "    default-path config\n"
	hanging := strings.Replace(string(src), anchor, anchor+"    lua-load "+lua+"\n", 1)
	if hanging == string(src) {
		t.Fatal("template changed: no default-path line to add the lua-load after")
	}
	tmplDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmplDir, templates.Main), []byte(hanging), 0o644); err != nil {
		t.Fatal(err)
	}
	for version, bin := range testenv.HAProxies(t) {
		start := time.Now()
		code, out, errs := runCLI(t, "render", "--manifests", "testdata/hosts", "--stdout",
			"--templates", tmplDir, "--haproxy", bin, "--haproxy-check-timeout", "2s")
		took := time.Since(start)
		if code != 1 || out != "" {
			t.Fatalf("haproxy %s: exit %d, want 1, and %d bytes on stdout: %s", version, code, len(out), errs)
		}
		for _, w := range []string{"HAProxy rejected the configuration", "haproxy -c did not finish within 2s", tmplDir} {
			if !strings.Contains(errs, w) {
				t.Errorf("haproxy %s: stderr lacks %q:\n%s", version, w, errs)
			}
		}
		// The deadline, the rendering and a second for haproxy's pipes,
		// with room for a busy machine.
		if took > 10*time.Second {
			t.Errorf("haproxy %s: render took %s with a 2s check deadline", version, took)
		}
	}
}

func TestRenderUsageErrors(t *testing.T) {
	tmplDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmplDir, templates.Main), []byte("{{ .Nope "), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"render"}, 2, "--manifests and exactly one of --out or --stdout are required"},
		{[]string{"render", "--manifests", "testdata/hosts", "--out", "x", "--stdout"}, 2, "exactly one"},
		{[]string{"render", "--manifests", "testdata/nope", "--stdout"}, 1, "no such file or directory"},
		{[]string{"render", "--manifests", "testdata/hosts", "--stdout", "--http-bind", "80"}, 1, "--http-bind"},
		{[]string{"render", "--manifests", "testdata/hosts", "--stdout", "--templates", tmplDir}, 1, "parsing templates"},
		{[]string{"render", "--manifests", "testdata/hosts", "--stdout", "--templates", t.TempDir()}, 1, "haproxy.cfg.tmpl"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

func TestExplain(t *testing.T) {
	code, out, errs := runCLI(t, "explain", "--manifests", "testdata/hosts",
		"https://Only.Example.com:443/api/v1?x=1", "bar.example.com/a?b=c", "https://a.b.example.com/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{
		// The exact host has no /api path: the wildcard host's rule serves it.
		"https://Only.Example.com:443/api/v1?x=1\n",
		`  maps/prefix.map "only.example.com/api/v1/": no match`,
		`  maps/prefix.map "*.example.com/api/v1/": found "*.example.com/api/"`,
		"  rule: Ingress default/wild spec.rules[0].http.paths[1], host *.example.com, Prefix path \"/api\"",
		"=> backend default_wild-api_80 (Service default/wild-api port 80)",
		// A URL without scheme is plain HTTP: redirected, query kept.
		"  => 308 redirect to https://bar.example.com/a?b=c",
		"  certificate: the default one (no certificate names a.b.example.com)",
		"  => 404 from HAProxy (backend _default_404)",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	for _, bad := range [][]string{
		{"explain", "--manifests", "testdata/hosts"},                  // no URL
		{"explain", "https://x.test/"},                                // no manifests
		{"explain", "--manifests", "testdata/hosts", "ftp://x.test/"}, // not HTTP
		{"explain", "--manifests", "testdata/hosts", "http://%zz/"},   // not a URL
		{"explain", "--manifests", "testdata/hosts", "--configmap", "x", "http://x.test/"},
	} {
		if code, _, _ := runCLI(t, bad...); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
}

// --manifests may be repeated, as for migrate: render and explain read
// every path as one set of manifests. The same object under two paths is
// taken once, from the first, and the other copy is reported.
func TestManifestsRepeated(t *testing.T) {
	data, err := os.ReadFile("testdata/hosts/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.yaml"), filepath.Join(dir, "second.yaml")
	half := len(docs) / 2
	if err := os.WriteFile(first, []byte(strings.Join(docs[:half], "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, []byte(strings.Join(docs[half:], "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "render", "--manifests", first, "--manifests", second, "--stdout", "--haproxy", testenv.HAProxy26(t))
	if code != 0 {
		t.Fatalf("render with two --manifests: exit %d: %s", code, errs)
	}
	want, err := os.ReadFile("testdata/hosts/expected/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("render with the manifests split in two differs from the golden configuration")
	}
	code, out, errs = runCLI(t, "render", "--manifests", "testdata/hosts/manifests.yaml", "--manifests", second, "--stdout", "--haproxy", testenv.HAProxy26(t))
	if code != 0 || out != string(want) {
		t.Errorf("render with objects given twice: exit %d, same configuration %v: %s", code, out == string(want), errs)
	}
	if !strings.Contains(errs, "is also given under testdata/hosts/manifests.yaml; this copy ignored") {
		t.Errorf("the second copies are not reported:\n%s", errs)
	}
	code, out, errs = runCLI(t, "explain", "--manifests", first, "--manifests", second, "https://foo.example.com/")
	if code != 0 || !strings.Contains(out, "rule: Ingress default/") {
		t.Errorf("explain with two --manifests: exit %d:\n%s%s", code, out, errs)
	}
}
