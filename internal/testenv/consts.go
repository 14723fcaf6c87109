package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// StringConsts parses a Go source file and returns its constants of the
// named string type, name → value, with whether each has a doc comment
// starting with its name and a colon: a closed set (problem reasons, reload
// causes) as the source declares it, independently of what the package's
// list of them says. A constant that is not a string literal fails the test.
func StringConsts(t testing.TB, file, typeName string) (values map[string]string, documented map[string]bool) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	values, documented = map[string]string{}, map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s constant %s is not a string literal", typeName, name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s constant %s: %v", typeName, name.Name, err)
				}
				values[name.Name] = v
				documented[name.Name] = vs.Doc != nil && strings.HasPrefix(vs.Doc.Text(), name.Name+":")
			}
		}
	}
	if len(values) == 0 {
		t.Fatalf("no %s constants found in %s", typeName, file)
	}
	return values, documented
}
