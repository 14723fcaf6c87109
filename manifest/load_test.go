package manifest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // -update flag
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// problemStrings are the problems as tests compare them: reason, then
// the text people read.
func problemStrings(ps []render.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, string(p.Reason)+" "+p.String())
	}
	return out
}

func TestDecodeKinds(t *testing.T) {
	const doc = `# a comment-only document is skipped
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
  spec: {ports: [{port: 80}]}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Secret
    metadata: {name: s, namespace: team}
---
{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c", "namespace": "ignored"}, "spec": {"controller": "x"}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: e, namespace: team}
addressType: IPv4
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
kind: NoVersion
---
apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: v1
kind: Service
metadata: [broken
`
	in, problems := Decode("f.yaml", []byte(doc))
	if len(in.Services) != 1 || in.Services[0].Namespace != "default" || in.Services[0].Name != "a" {
		t.Errorf("services: %+v", in.Services)
	}
	if len(in.Secrets) != 1 || in.Secrets[0].Namespace != "team" {
		t.Errorf("secrets from a nested List: %+v", in.Secrets)
	}
	if len(in.IngressClasses) != 1 || in.IngressClasses[0].Namespace != "" {
		t.Errorf("IngressClass is cluster-scoped: %+v", in.IngressClasses)
	}
	if len(in.Ingresses) != 1 || len(in.EndpointSlices) != 1 || len(in.ConfigMaps) != 1 {
		t.Errorf("ingresses %d, slices %d, configmaps %d", len(in.Ingresses), len(in.EndpointSlices), len(in.ConfigMaps))
	}
	want := []string{
		"UnusedKind File f.yaml (document 7): kind apps/v1, Kind=Deployment is not used; ignored",
		"UnusedKind File f.yaml (document 8): kind example.com/v1, Kind=Widget is not used; ignored",
		"FileInvalid File f.yaml (document 9): cannot decode",
		"DuplicateObject File f.yaml (document 10): Service default/a is also defined in f.yaml (document 2) items[0]",
		"FileInvalid File f.yaml (document 11): invalid YAML",
	}
	got := strings.Join(problemStrings(problems), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("no problem containing %q in:\n%s", w, got)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), got)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\n"
	}
	write("b.yaml", svc("b"))
	write("sub/a.yml", svc("a"))
	write("c.json", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"c"}}`)
	write("notes.txt", svc("txt"))
	write(".hidden.yaml", svc("hidden"))
	write("..data/x.yaml", svc("configmap-volume"))
	in, problems, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range in.Services {
		names = append(names, s.Name)
	}
	if want := []string{"b", "c", "a"}; !slices.Equal(names, want) {
		t.Errorf("services %v, want %v (lexical file order)", names, want)
	}
	if len(problems) != 0 {
		t.Errorf("problems: %v", problemStrings(problems))
	}
	if _, _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing path must be an error")
	}
}
