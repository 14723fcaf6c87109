package main

import (
	"os"
	"strings"
	"testing"

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
		if n.Ours != "" {
			ours = code(render.AnnotationPrefix + n.Ours)
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

func row(b *strings.Builder, cells ...string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// cell escapes what would end a table cell or a line.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func code(s string) string { return "`" + cell(s) + "`" }
