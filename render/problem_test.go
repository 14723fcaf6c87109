package render

import (
	"encoding/json"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// reasonConstants parses problem.go and returns its Reason constants, name
// → value: the closed set as the source declares it, independently of
// what Reasons() lists.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	consts, _ := testenv.StringConsts(t, "problem.go", "Reason")
	return consts
}

// Every Reason constant is in Reasons(), once, and named as its value, a
// CamelCase word that Kubernetes accepts as an Event reason; nothing else
// is Known.
func TestReasonsAreClosed(t *testing.T) {
	consts := reasonConstants(t)
	camel := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	for name, v := range consts {
		if name != v {
			t.Errorf("constant %s has value %q: the name and the value people see must be the same", name, v)
		}
		if !camel.MatchString(v) || len(v) > 128 {
			t.Errorf("reason %q is not CamelCase of at most 128 characters", v)
		}
		if !Reason(v).Known() {
			t.Errorf("constant %s is not in Reasons()", name)
		}
	}
	all := Reasons()
	for i, r := range all {
		if _, ok := consts[string(r)]; !ok {
			t.Errorf("Reasons() lists %q, which is not a constant", r)
		}
		if slices.Contains(all[:i], r) {
			t.Errorf("Reasons() lists %q twice", r)
		}
	}
	for _, r := range []Reason{"", "Skipped", "invalidHost"} {
		if r.Known() {
			t.Errorf("%q is Known", r)
		}
	}
}

// A problem is created with a reason from the closed set everywhere in
// the module, not only on the paths tests happen to run: every non-empty
// Problem literal sets Reason, and every Reason given to a Problem or to a
// function taking a Reason is a constant of the set or a Reason parameter
// passed on (or an existing problem's Reason field). Without type information this is a syntactic check, which
// is enough because the code creating problems is written in these forms.
func TestProblemsCreatedWithKnownReasons(t *testing.T) {
	consts := reasonConstants(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	renderDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}

	// Parse every non-test file of the module, by directory (package).
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == root {
				return nil
			}
			if n := d.Name(); n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".") {
				return filepath.SkipDir
			}
			// Another module (tools/kube) has no problems.
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(p)] = append(pkgs[filepath.Dir(p)], f)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the module's sources: %v", err)
	}

	isReasonType := func(e ast.Expr, inRender bool) bool {
		switch x := e.(type) {
		case *ast.Ident:
			return inRender && x.Name == "Reason"
		case *ast.SelectorExpr:
			id, ok := x.X.(*ast.Ident)
			return ok && id.Name == "render" && x.Sel.Name == "Reason"
		}
		return false
	}
	isProblemType := func(e ast.Expr, inRender bool) bool {
		switch x := e.(type) {
		case *ast.Ident:
			return inRender && x.Name == "Problem"
		case *ast.SelectorExpr:
			id, ok := x.X.(*ast.Ident)
			return ok && id.Name == "render" && x.Sel.Name == "Problem"
		}
		return false
	}
	// reasonParams are the names of a function's Reason parameters.
	reasonParams := func(fn *ast.FuncDecl, inRender bool) []string {
		var names []string
		for _, f := range fn.Type.Params.List {
			if isReasonType(f.Type, inRender) {
				for _, n := range f.Names {
					names = append(names, n.Name)
				}
			}
		}
		return names
	}

	checked := 0
	for dir, files := range pkgs {
		inRender := dir == renderDir
		// Functions of this package taking a Reason: which arguments are
		// reasons. Methods are keyed by name alone; names do not collide
		// in this code base, and a collision only makes the check stricter.
		takesReason := map[string][]int{}
		for _, f := range files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				i := 0
				for _, field := range fn.Type.Params.List {
					n := max(len(field.Names), 1)
					if isReasonType(field.Type, inRender) {
						for k := range n {
							takesReason[fn.Name.Name] = append(takesReason[fn.Name.Name], i+k)
						}
					}
					i += n
				}
			}
		}
		for _, f := range files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				params := reasonParams(fn, inRender)
				valid := func(e ast.Expr) bool {
					switch x := e.(type) {
					case *ast.Ident:
						_, isConst := consts[x.Name]
						return (inRender && isConst) || slices.Contains(params, x.Name)
					case *ast.SelectorExpr:
						// p.Reason passes on the reason of a problem
						// created, and checked, elsewhere.
						if x.Sel.Name == "Reason" {
							return true
						}
						id, ok := x.X.(*ast.Ident)
						_, isConst := consts[x.Sel.Name]
						return ok && id.Name == "render" && isConst
					}
					return false
				}
				checkLit := func(lit *ast.CompositeLit) {
					if len(lit.Elts) == 0 {
						return // the zero Problem, "no problem"
					}
					checked++
					for _, el := range lit.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							t.Errorf("%s: Problem literal without field names", fset.Position(lit.Pos()))
							return
						}
						if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Reason" {
							if !valid(kv.Value) {
								t.Errorf("%s: Problem Reason is not a constant of the closed set", fset.Position(kv.Value.Pos()))
							}
							return
						}
					}
					t.Errorf("%s: Problem created without a Reason", fset.Position(lit.Pos()))
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.CompositeLit:
						if isProblemType(x.Type, inRender) {
							checkLit(x)
						}
						// []render.Problem{{...}} leaves out the element type.
						if at, ok := x.Type.(*ast.ArrayType); ok && isProblemType(at.Elt, inRender) {
							for _, el := range x.Elts {
								if lit, ok := el.(*ast.CompositeLit); ok && lit.Type == nil {
									checkLit(lit)
								}
							}
						}
					case *ast.CallExpr:
						if isReasonType(x.Fun, inRender) && filepath.Base(fset.Position(x.Pos()).Filename) != "problem.go" {
							t.Errorf("%s: conversion to Reason: use a constant of the closed set", fset.Position(x.Pos()))
						}
						var name string
						switch fun := x.Fun.(type) {
						case *ast.Ident:
							name = fun.Name
						case *ast.SelectorExpr:
							name = fun.Sel.Name
						}
						for _, i := range takesReason[name] {
							if i < len(x.Args) {
								checked++
								if !valid(x.Args[i]) {
									t.Errorf("%s: %s is given a reason that is not a constant of the closed set", fset.Position(x.Args[i].Pos()), name)
								}
							}
						}
					}
					return true
				})
			}
		}
	}
	// The builder alone creates problems in more than 30 places: a much
	// smaller count means the check stopped seeing them.
	if checked < 30 {
		t.Errorf("only %d places create problems; the check no longer finds them", checked)
	}
}

// Problems are JSON objects with the fields /status lists, severity as a
// word, and read back unchanged.
func TestProblemJSON(t *testing.T) {
	p := Problem{Severity: Notice, ObjectRef: ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"},
		Field: "spec.rules[0].http.paths[0].backend.service", Reason: NoEndpoints, Message: "no ready endpoints"}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"severity":"notice","kind":"Ingress","namespace":"default","name":"web",` +
		`"field":"spec.rules[0].http.paths[0].backend.service","reason":"NoEndpoints","message":"no ready endpoints"}`
	if string(data) != want {
		t.Errorf("JSON\n%s\nwant\n%s", data, want)
	}
	var back Problem
	if err := json.Unmarshal(data, &back); err != nil || back != p {
		t.Errorf("read back %+v, %v; want %+v", back, err, p)
	}
	if data, err := json.Marshal(Problem{Severity: Warning}); err != nil || !strings.HasPrefix(string(data), `{"severity":"warning",`) {
		t.Errorf("warning: %s, %v", data, err)
	}
	if _, err := json.Marshal(Problem{Severity: Severity(7)}); err == nil {
		t.Error("an unknown severity marshals")
	}
	if err := json.Unmarshal([]byte(`{"severity":"error"}`), &back); err == nil {
		t.Error(`severity "error" unmarshals`)
	}
}
