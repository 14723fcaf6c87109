package controller

import (
	"context"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// causeConstants parses cause.go and returns its Cause constants, name →
// value, with whether each has a comment: the closed set as the source
// declares it, independently of what Causes() lists.
func causeConstants(t *testing.T) (map[string]string, map[string]bool) {
	t.Helper()
	return testenv.StringConsts(t, "cause.go", "Cause")
}

// Every Cause constant has a comment saying what it means, a lower_snake
// value, and is in Causes() once; nothing else is Known.
func TestCausesAreClosed(t *testing.T) {
	consts, documented := causeConstants(t)
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for name, v := range consts {
		if !documented[name] {
			t.Errorf("constant %s has no comment starting %q", name, name+":")
		}
		if !snake.MatchString(v) {
			t.Errorf("cause %q is not lower_snake", v)
		}
		if !Cause(v).Known() {
			t.Errorf("constant %s is not in Causes()", name)
		}
	}
	values := map[string]bool{}
	for _, v := range consts {
		values[v] = true
	}
	all := Causes()
	for i, c := range all {
		if !values[string(c)] {
			t.Errorf("Causes() lists %q, which is not a constant", c)
		}
		if slices.Contains(all[:i], c) {
			t.Errorf("Causes() lists %q twice", c)
		}
	}
	for _, c := range []Cause{"", "Templates", "the templates changed"} {
		if c.Known() {
			t.Errorf("%q is Known", c)
		}
	}
}

// Every reload the package plans names its cause with a constant of the
// set, on every path, not only those the tests below run: each call of
// reloadFor outside tests passes a Cause constant first.
func TestEveryReloadNamesACause(t *testing.T) {
	consts, _ := causeConstants(t)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "reloadFor" {
				return true
			}
			calls++
			if len(call.Args) != 2 {
				t.Errorf("%s: reloadFor with %d arguments", fset.Position(call.Pos()), len(call.Args))
				return true
			}
			if id, ok := call.Args[0].(*ast.Ident); !ok || consts[id.Name] == "" {
				t.Errorf("%s: reloadFor's cause is not a Cause constant", fset.Position(call.Pos()))
			}
			return true
		})
	}
	if calls < len(consts) {
		t.Errorf("found %d calls of reloadFor for %d causes", calls, len(consts))
	}
}

// withFile is s with its files changed by edit (kept sorted by path, as
// Output's are).
func withFile(s *state, edit func([]haproxycfg.File) []haproxycfg.File) *state {
	out := *s.out
	out.Files = edit(slices.Clone(out.Files))
	slices.SortFunc(out.Files, func(a, b haproxycfg.File) int { return strings.Compare(a.Path, b.Path) })
	next := *s
	next.out = &out
	return &next
}

// The planner says why it reloads with the cause that fits, for each kind
// of change that needs a reload; a runtime change has none.
func TestPlanCauses(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}}
	old := base.state(t)
	templates := base.state(t)
	templates.renderer = old.renderer + 1
	extra := func(files []haproxycfg.File) []haproxycfg.File {
		return append(files, haproxycfg.NewFile("certs/extra.pem", []byte("not a certificate")))
	}
	withExtra := withFile(old, extra)
	grown := cluster{services: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.2"}}, routes: []string{"x.test/=a", "y.test/=b"}}
	edited := base
	edited.editTemplate = func(s string) string { return strings.Replace(s, "    option dontlognull\n", "", 1) }
	moved := cluster{services: map[string][]string{"a": {"10.0.0.9"}}, routes: []string{"x.test/=a"}}
	for _, tc := range []struct {
		name      string
		old, next *state
		want      Cause
	}{
		{"first pass", nil, old, CauseUnknownState},
		{"new templates, same output", old, templates, CauseTemplates},
		{"a file beside haproxy.cfg added", old, withExtra, CauseFileChanged},
		{"a file beside haproxy.cfg removed", withExtra, old, CauseFilesRemoved},
		{"a new backend", old, grown.state(t), CauseBackends},
		{"haproxy.cfg changed outside servers", old, edited.state(t), CauseConfigChanged},
		{"an endpoint moved", old, moved.state(t), ""},
	} {
		p := diff(tc.old, tc.next)
		if p.cause != tc.want || p.reload != (tc.want != "") || (p.reload && p.detail == "") {
			t.Errorf("%s: reload %v, cause %q (%q), want cause %q", tc.name, p.reload, p.cause, p.detail, tc.want)
		}
	}
}

// A runtime update HAProxy's master CLI does not take becomes a reload
// whose cause says so, and no command is recorded as sent.
func TestRuntimeFailureBecomesAReload(t *testing.T) {
	old := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}}.state(t)
	next := cluster{services: map[string][]string{"a": {"10.0.0.2"}}, routes: []string{"x.test/=a"}}.state(t)
	p := diff(old, next)
	if p.reload || p.runtimeOps() == 0 {
		t.Fatalf("an endpoint move is not a runtime change: %+v", p)
	}
	// A master socket nothing listens on: the connection is refused until
	// the update's deadline.
	socket := filepath.Join(t.TempDir(), "master.sock")
	if err := os.WriteFile(socket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := New(Config{HAProxy: reload.NewMasterCLI(socket)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got, sent := c.applyRuntime(ctx, p)
	if !got.reload || got.cause != CauseRuntimeFailed || !strings.Contains(got.detail, "a runtime API command failed: ") || sent != nil {
		t.Errorf("after a failed runtime update: reload %v, cause %q (%q), sent %q", got.reload, got.cause, got.detail, sent)
	}
}
