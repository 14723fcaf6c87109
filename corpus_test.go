package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// The ingress-nginx corpus (testdata/corpus) is real Ingresses carrying
// nginx.ingress.kubernetes.io annotations, quoted from public repositories:
// one file per repository, named <kind>-<owner>-<repo>.yaml, where kind is
// docs (a project's documentation or examples), chart (a Helm chart's
// templates rendered with its default values) or app (an application's own
// manifests). Each file starts with a comment naming the repository and
// commit, and each document with the path it was found at. Documents are
// separated by a line "---" and every one is an Ingress.

const corpusDir = "testdata/corpus"

// corpusDoc is one Ingress of the corpus and where it is.
type corpusDoc struct {
	file, kind string
	// n is the document's place in its file, from 1.
	n   int
	ing *networkingv1.Ingress
}

func (d corpusDoc) String() string { return fmt.Sprintf("%s document %d", d.file, d.n) }

// loadCorpus decodes every document of every corpus file on its own: the
// same name in two sources (there are many "example-ingress"es), or twice
// in one documentation page, is two Ingresses here, where a manifests
// directory would keep the first.
func loadCorpus(t *testing.T) []corpusDoc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files in %s: %v", corpusDir, err)
	}
	var docs []corpusDoc
	for _, f := range files {
		kind, _, ok := strings.Cut(filepath.Base(f), "-")
		if !ok || !slices.Contains([]string{"docs", "chart", "app"}, kind) {
			t.Fatalf("%s: the name must start with docs-, chart- or app-", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if !strings.HasPrefix(first, "# ") || !strings.Contains(first, "https://github.com/") || !strings.Contains(first, " commit ") {
			t.Errorf("%s: must start with a comment naming the repository and commit it comes from", f)
		}
		parts := strings.Split(string(data), "\n---\n")
		if len(parts) < 2 {
			t.Errorf("%s: no documents", f)
		}
		for i, part := range parts[1:] {
			d := corpusDoc{file: f, kind: kind, n: i + 1}
			if !strings.HasPrefix(part, "# ") {
				t.Errorf("%s: must start with a comment naming the path it was found at", d)
			}
			in, problems := manifest.Decode(d.String(), []byte(part))
			for _, p := range problems {
				t.Errorf("%s: %s [%s]", d, p.Report(), p.Reason)
			}
			if len(in.Ingresses) != 1 {
				t.Errorf("%s: %d Ingresses, want 1", d, len(in.Ingresses))
				continue
			}
			d.ing = in.Ingresses[0]
			if len(nginxKeys(d.ing)) == 0 {
				t.Errorf("%s: no %s annotations", d, render.NginxAnnotationPrefix)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

func nginxKeys(ing *networkingv1.Ingress) []string {
	var keys []string
	for k := range ing.Annotations {
		if strings.HasPrefix(k, render.NginxAnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	return keys
}

// corpusClasses are IngressClasses of ours for every class the Ingresses
// name, and a default one: a user migrating makes the class the Ingresses
// already name point at haproxy-sidecar, so every one is served.
func corpusClasses(ings []*networkingv1.Ingress) []*networkingv1.IngressClass {
	names := map[string]bool{}
	for _, ing := range ings {
		if n := ing.Spec.IngressClassName; n != nil {
			names[*n] = true
		}
		if n, ok := ing.Annotations[render.LegacyClassAnnotation]; ok {
			names[n] = true
		}
	}
	classes := []*networkingv1.IngressClass{{
		ObjectMeta: metav1.ObjectMeta{Name: "corpus-default", Annotations: map[string]string{render.DefaultClassAnnotation: "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: render.DefaultControllerName},
	}}
	for n := range names {
		classes = append(classes, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: n},
			Spec:       networkingv1.IngressClassSpec{Controller: render.DefaultControllerName},
		})
	}
	return classes
}

// TestCorpus measures --annotations-compat nginx on the corpus: migrate's
// report over every Ingress, whose shares and per-annotation table are
// kept in testdata/corpus/report.txt (`make corpus` rewrites it), and each
// Ingress rendered alone under --annotations-compat nginx, served, and its
// configuration accepted by `haproxy -c` of HAProxy 2.6 and 3.0.
func TestCorpus(t *testing.T) {
	docs := loadCorpus(t)
	if t.Failed() {
		t.FailNow()
	}
	var ings []*networkingv1.Ingress
	for _, d := range docs {
		ings = append(ings, d.ing)
	}
	report := render.MigrationReport(render.Inputs{Ingresses: ings, IngressClasses: corpusClasses(ings)}, "")
	got := corpusReport(docs, report)
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "Supported:") || strings.HasPrefix(line, "Sources:") {
			t.Log(line)
		}
	}
	path := filepath.Join(corpusDir, "report.txt")
	if *testenv.Update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	} else if got != string(want) {
		t.Errorf("%s differs (make corpus, or go test . -run '^TestCorpus$' -update, rewrites it); got:\n%s", path, got)
	}

	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	haproxies := testenv.HAProxies(t)
	byFile := map[string][]corpusDoc{}
	for _, d := range docs {
		byFile[d.file] = append(byFile[d.file], d)
	}
	for file, docs := range byFile {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			for _, d := range docs {
				renderCorpusDoc(t, d, cfg, haproxies)
			}
		})
	}
}

// renderCorpusDoc renders one Ingress as `render --annotations-compat
// nginx` would and checks the configuration with every HAProxy.
func renderCorpusDoc(t *testing.T, d corpusDoc, cfg haproxycfg.Config, haproxies map[string]string) {
	t.Helper()
	in := render.Inputs{Ingresses: []*networkingv1.Ingress{d.ing}, IngressClasses: corpusClasses([]*networkingv1.Ingress{d.ing})}
	m := render.BuildModel(in, render.Options{AnnotationsCompat: render.CompatNginx})
	if key := d.ing.Namespace + "/" + d.ing.Name; !slices.Contains(m.Served, key) {
		t.Errorf("%s: Ingress %s not served; problems: %v", d, key, m.Problems)
		return
	}
	out, err := haproxycfg.Render(m, cfg)
	if err != nil {
		t.Errorf("%s: render: %v", d, err)
		return
	}
	dir := t.TempDir()
	for _, f := range out.Files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"2.6", "3.0"} {
		if err := reload.Check(context.Background(), haproxies[v], filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Errorf("%s: haproxy %s -c refuses the rendered configuration: %v", d, v, err)
		}
	}
}

// corpusReport is report.txt: the sources, migrate's summary lines, and
// how often each annotation is used with what migrate says of it.
func corpusReport(docs []corpusDoc, m render.Migration) string {
	var b strings.Builder
	b.WriteString("# The ingress-nginx corpus (testdata/corpus) as `migrate` sees it; `make corpus` rewrites this file.\n\n")
	sources, perKind := map[string]bool{}, map[string]map[string]bool{}
	docsPerKind := map[string]int{}
	for _, d := range docs {
		sources[d.file] = true
		if perKind[d.kind] == nil {
			perKind[d.kind] = map[string]bool{}
		}
		perKind[d.kind][d.file] = true
		docsPerKind[d.kind]++
	}
	fmt.Fprintf(&b, "Sources: %d repositories, %d Ingresses:", len(sources), len(docs))
	for i, k := range []string{"app", "chart", "docs"} {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %d (%d Ingresses)", sep, k, len(perKind[k]), docsPerKind[k])
	}
	b.WriteString("\n")
	for _, line := range strings.Split(m.Text(), "\n") {
		// The counts and the shares; the per-Ingress blocks are not
		// kept, the table below sums them up.
		if strings.HasPrefix(line, "Supported:") || strings.Contains(line, " Ingresses, ") {
			b.WriteString(line + "\n")
		}
	}

	type use struct {
		annotation string
		byStatus   map[render.MigrationStatus]int
		uses, not  int
	}
	uses := map[string]*use{}
	for _, ing := range m.Ingresses {
		for _, r := range ing.Rows {
			name := strings.TrimPrefix(r.Annotation, render.NginxAnnotationPrefix)
			u := uses[name]
			if u == nil {
				u = &use{annotation: name, byStatus: map[render.MigrationStatus]int{}}
				uses[name] = u
			}
			u.uses++
			u.byStatus[r.Status]++
			if r.Status != render.MigrationHonoured && r.Status != render.MigrationDifference && r.Status != render.MigrationOverridden {
				u.not++
			}
		}
	}
	var all []*use
	for _, u := range uses {
		all = append(all, u)
	}
	table := func(title string, rows []*use) {
		fmt.Fprintf(&b, "\n%s\n\n", title)
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprint(w, "uses\tnot supported\tannotation")
		for _, st := range render.MigrationStatuses() {
			fmt.Fprintf(w, "\t%s", st)
		}
		fmt.Fprintln(w)
		for _, u := range rows {
			fmt.Fprintf(w, "%d\t%d\t%s", u.uses, u.not, u.annotation)
			for _, st := range render.MigrationStatuses() {
				fmt.Fprintf(w, "\t%d", u.byStatus[st])
			}
			fmt.Fprintln(w)
		}
		w.Flush()
	}
	slices.SortFunc(all, func(a, b *use) int {
		if a.uses != b.uses {
			return b.uses - a.uses
		}
		return strings.Compare(a.annotation, b.annotation)
	})
	table("Every annotation ("+render.NginxAnnotationPrefix+"...), by uses:", all)
	var not []*use
	for _, u := range all {
		if u.not > 0 {
			not = append(not, u)
		}
	}
	slices.SortStableFunc(not, func(a, b *use) int { return b.not - a.not })
	table("Not supported (unsupported, invalid or failing closed), by such uses:", not)
	return b.String()
}
