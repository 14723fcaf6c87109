package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// README.md's annotation tables are generated from the tables the program
// reads annotations with (render.Annotations, render.NginxAnnotations), so
// the documentation cannot drift from the code. `go test . -run README
// -update` rewrites them.
func TestREADMETables(t *testing.T) {
	const path = "README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := []struct{ marker, table string }{
		{"annotation-table", annotationTable()},
		{"nginx-compat-table", nginxCompatTable()},
		{"fail-closed-table", failClosedTable()},
		{"reload-cause-table", reloadCauseTable(t)},
	}
	updated := readme
	for _, b := range blocks {
		begin, end := "<!-- "+b.marker+":begin -->\n", "<!-- "+b.marker+":end -->"
		i := strings.Index(updated, begin)
		j := strings.Index(updated, end)
		if i < 0 || j < i || strings.Count(updated, begin) != 1 || strings.Count(updated, end) != 1 {
			t.Fatalf("%s: want exactly one %q followed by one %q", path, strings.TrimSpace(begin), end)
		}
		if got := updated[i+len(begin) : j]; got != b.table {
			if !*testenv.Update {
				t.Errorf("%s: the block between the %s markers differs from the generated table; run `go test . -run README -update`\n--- generated:\n%s", path, b.marker, b.table)
			}
			updated = updated[:i+len(begin)] + b.table + updated[j:]
		}
	}
	if *testenv.Update && updated != readme {
		if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// annotationTable is README's table of haproxy-sidecar.io annotations.
func annotationTable() string {
	var b strings.Builder
	b.WriteString("| annotation | scope | allowed values | default | what it does | in HAProxy |\n|---|---|---|---|---|---|\n")
	for _, a := range render.Annotations() {
		haproxy := ""
		if a.HAProxy != "" {
			haproxy = code(a.HAProxy)
		}
		row(&b, code(render.AnnotationPrefix+a.Name), a.Scope, cell(a.Syntax), cell(a.Default), cell(a.Doc), haproxy)
	}
	return b.String()
}

// nginxCompatTable is README's table of what --annotations-compat nginx
// makes of each ingress-nginx annotation.
func nginxCompatTable() string {
	var b strings.Builder
	b.WriteString("| `" + render.NginxAnnotationPrefix + "` | becomes | difference | if unsupported, what traffic loses |\n|---|---|---|---|\n")
	for _, n := range render.NginxAnnotations() {
		ours := "unsupported"
		switch {
		case n.Ours != "":
			ours = code(render.AnnotationPrefix + n.Ours)
		case n.Accepted:
			ours = "accepted, nothing to set"
		}
		row(&b, code(n.Name), ours, cell(n.Difference), cell(n.Effect))
	}
	return b.String()
}

// failClosedTable is README's list of the ingress-nginx protections that
// make an Ingress fail closed.
func failClosedTable() string {
	var b strings.Builder
	b.WriteString("| `" + render.NginxAnnotationPrefix + "` | protection not implemented | fails closed when its value is |\n|---|---|---|\n")
	for _, p := range render.NginxProtections() {
		row(&b, code(p.Name), cell(p.What), cell(p.Values))
	}
	return b.String()
}

// reloadCauseTable is README's table of reload causes: each constant of
// controller/cause.go with its comment, in Causes' order.
func reloadCauseTable(t *testing.T) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "controller/cause.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	meaning := map[controller.Cause]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if len(vs.Names) != 1 || len(vs.Values) != 1 || !ok || vs.Doc == nil {
				continue
			}
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			meaning[controller.Cause(v)] = strings.TrimPrefix(vs.Doc.Text(), vs.Names[0].Name+": ")
		}
	}
	var b strings.Builder
	b.WriteString("| cause | a reload is needed because |\n|---|---|\n")
	for _, c := range controller.Causes() {
		if meaning[c] == "" {
			t.Errorf("controller.%s has no comment in controller/cause.go", c)
		}
		row(&b, code(string(c)), cell(strings.TrimSpace(meaning[c])))
	}
	return b.String()
}

func row(b *strings.Builder, cells ...string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// cell escapes what would end a table cell or a line.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func code(s string) string { return "`" + cell(s) + "`" }
