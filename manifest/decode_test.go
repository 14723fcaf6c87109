package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// referenceDecodeFile is decodeFile as it was before documents were cut
// by hand and Lists into items (commit 5e356b1), one document after the
// other: apimachinery's YAMLReader, sigs.k8s.io/yaml for every YAML
// document, each List decoded whole. decodeFile must give exactly its
// objects and problems. The one difference on purpose: the separator
// error no longer quotes the line (errSeparator).
func referenceDecodeFile(name string, data []byte) ([]decoded, []render.Problem) {
	var d decoder
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		where := fmt.Sprintf("%s (document %d)", name, n)
		if err != nil {
			msg := safeError(err)
			if strings.HasPrefix(msg, "invalid Yaml document separator") {
				msg = errSeparator.Error()
			}
			return d.objects, append(d.problems, fileProblem(render.Warning, render.FileInvalid, where,
				fmt.Sprintf("cannot be read: %s; rest of file skipped", msg)))
		}
		if len(bytes.TrimSpace(referenceStripComments(raw))) == 0 {
			continue
		}
		referenceDecode(&d, where, raw)
	}
	return d.objects, d.problems
}

func referenceStripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) == 0 || t[0] == '#' {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func referenceDecode(d *decoder, where string, raw []byte) {
	js, err := utilyaml.ToJSON(raw)
	if err != nil {
		d.report(render.Warning, render.FileInvalid, where, "invalid YAML: %s; skipped", safeError(err))
		return
	}
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) && gvk != nil {
			d.report(render.Notice, render.UnusedKind, where, "kind %s is not used; ignored", gvk.String())
			return
		}
		d.report(render.Warning, render.FileInvalid, where, "cannot decode: %s; skipped", safeError(err))
		return
	}
	switch o := obj.(type) {
	case *corev1.List:
		for i, item := range o.Items {
			referenceDecode(d, fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *metav1.List:
		for i, item := range o.Items {
			referenceDecode(d, fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *networkingv1.Ingress:
		d.keep(where, "Ingress", o, &o.ObjectMeta, true)
	case *networkingv1.IngressClass:
		d.keep(where, "IngressClass", o, &o.ObjectMeta, false)
	case *corev1.Service:
		d.keep(where, "Service", o, &o.ObjectMeta, true)
	case *discoveryv1.EndpointSlice:
		d.keep(where, "EndpointSlice", o, &o.ObjectMeta, true)
	case *corev1.Secret:
		d.keep(where, "Secret", o, &o.ObjectMeta, true)
	case *corev1.ConfigMap:
		d.keep(where, "ConfigMap", o, &o.ObjectMeta, true)
	default:
		kind := obj.GetObjectKind().GroupVersionKind().String()
		d.report(render.Notice, render.UnusedKind, where, "kind %s is not used; ignored", kind)
	}
}

// checkEquivalent decodes data with decodeFile, sequentially and on many
// goroutines, and with the reference, and reports any difference.
func checkEquivalent(t testing.TB, data []byte) {
	t.Helper()
	wantObjs, wantProblems := referenceDecodeFile("f.yaml", data)
	for _, minPer := range []int{1 << 30, 1} {
		old := parallelDecodeMin
		parallelDecodeMin = minPer
		objs, problems := decodeFile("f.yaml", data)
		parallelDecodeMin = old
		mode := "sequential"
		if minPer == 1 {
			mode = "parallel"
		}
		if !reflect.DeepEqual(problemStrings(problems), problemStrings(wantProblems)) {
			t.Errorf("%s: problems differ from the reference:\n got %q\nwant %q", mode, problemStrings(problems), problemStrings(wantProblems))
		}
		if len(objs) != len(wantObjs) {
			t.Errorf("%s: %d objects, the reference %d", mode, len(objs), len(wantObjs))
			continue
		}
		for i := range objs {
			if objs[i].where != wantObjs[i].where || objs[i].kind != wantObjs[i].kind || !reflect.DeepEqual(objs[i].obj, wantObjs[i].obj) {
				t.Errorf("%s: object %d differs from the reference:\n got %s %s %+v\nwant %s %s %+v", mode, i,
					objs[i].where, objs[i].kind, objs[i].obj, wantObjs[i].where, wantObjs[i].kind, wantObjs[i].obj)
			}
		}
	}
}

const svcYAML = `apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: team
  annotations:
    note: |
      first line
      ---
      - not an item
    empty: ""
spec:
  ports:
  - name: http
    port: 80
    targetPort: 8080
`

// equivalenceCases are the shapes decodeFile must decode exactly as the
// reference: comments, blank and marker-only documents, separators inside
// block scalars and with trailing content, Lists in YAML and JSON (items
// at column 0 and indented, bad items, items that do not parse alone,
// aliases across items), CRLF, a last line without a newline.
var equivalenceCases = map[string]string{
	"documents": "# only a comment\n---\n" + fmt.Sprintf(svcYAML, "a") + "--- # a comment after the marker\n" +
		fmt.Sprintf(svcYAML, "b") + "---\n---\n\n---\n" + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  script: |\n    #!/bin/sh\n    echo ---\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
	"leading markers":       "---\n---\n" + fmt.Sprintf(svcYAML, "a"),
	"marker then comment":   "---\n# c\n---\n" + fmt.Sprintf(svcYAML, "a") + "---\n---\n",
	"separator with text":   fmt.Sprintf(svcYAML, "a") + "--- secret-looking text\n" + fmt.Sprintf(svcYAML, "b"),
	"four dashes":           fmt.Sprintf(svcYAML, "a") + "----\n" + fmt.Sprintf(svcYAML, "b"),
	"bad documents":         fmt.Sprintf(svcYAML, "a") + "---\nkind: [\n---\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec: {ports: [{port: http}]}\n---\n" + fmt.Sprintf(svcYAML, "b"),
	"crlf":                  strings.ReplaceAll(fmt.Sprintf(svcYAML, "a")+"---\n"+fmt.Sprintf(svcYAML, "b"), "\n", "\r\n"),
	"no final newline":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: |\n    v",
	"no final newline 2":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: |+\n    v\n\n",
	"json documents":        `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}` + "\n---\n" + `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": 1}}`,
	"empty":                 "",
	"only comments":         "# a\n# b\n",
	"yaml list":             yamlList(0, fmt.Sprintf(svcYAML, "a"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n  b: |-\n    x\n\n    y\n", fmt.Sprintf(svcYAML, "b")),
	"indented list":         yamlList(2, fmt.Sprintf(svcYAML, "a"), fmt.Sprintf(svcYAML, "b")),
	"list with bad items":   yamlList(0, fmt.Sprintf(svcYAML, "a"), "null", "apiVersion: v1\nmetadata: {name: nokind}", "apiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec: {ports: [{port: http}]}", "3", "[]", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}", fmt.Sprintf(svcYAML, "b")),
	"list bad yaml item":    yamlList(0, fmt.Sprintf(svcYAML, "a"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [broken\n", fmt.Sprintf(svcYAML, "b")),
	"list alias":            yamlList(0, "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: c}", "apiVersion: v1\nkind: ConfigMap\nmetadata: *m"),
	"list anchor in item":   yamlList(0, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: &v x, b: *v}"),
	"list nested list":      yamlList(0, "apiVersion: v1\nkind: List\nitems:\n- "+indent(fmt.Sprintf(svcYAML, "n"), 2)),
	"list quoted cut":       "apiVersion: v1\nkind: List\nx: \"\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n\"\n",
	"list items twice":      yamlList(0, fmt.Sprintf(svcYAML, "a")) + "items:\n- " + indent(fmt.Sprintf(svcYAML, "b"), 2),
	"list comment in items": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n# between\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n",
	"list tab":              "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n\t\n",
	"list block indent":     yamlList(0, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: |2\n      two more\n"),
	"not a list":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nitems:\n- a\n- b\n",
	"typed list":            "apiVersion: v1\nkind: ServiceList\nitems:\n- " + indent(fmt.Sprintf(svcYAML, "a"), 2),
	"json list":             `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"x": "}]\"{["}}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}], "metadata": {}}`,
	"json list bad items":   `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, null, 3, {"kind": "ConfigMap"}, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "t"}, "spec": {"ports": [{"port": "http"}]}}]}`,
	"json list broken":      `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1" "kind": "ConfigMap"}]}`,
	"json list trailing":    `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]} {}`,
	"json list escaped key": `{"apiVersion": "v1", "kind": "List", "it\u0065ms": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]}`,
	"json list twice":       `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}], "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}`,
	"duplicates":            fmt.Sprintf(svcYAML, "a") + "---\n" + fmt.Sprintf(svcYAML, "a"),
	"scalars": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    a: yes\n    b: \"yes\"\n    c: 0755\n    d: 1e3\n    e: 10.0.0.1\n    f: 2026-12-01\n    g: ~\n    h: 'it''s'\n    i: -0\n    j: +5\n    k: 12345678901234567890\n    l: \"a\\tb\\u00e9<&>\"\n    \"quoted key\": x\n    m: .5\n    nn: 0x1F\n    o: 1_000\n    p: null\n    q: -12\n    r: Off\n    s: /path\n    z: last\n    yy: order\n    t:\n    u: {}\n    v: []\n" +
		"data:\n  k: |+\n    kept\n\n\n  l: |-\n    stripped\n\n  m: |\n\n    leading blank\n  nb: |\n  o: x\n",
	"duplicate keys": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n  a: c\n  y: n\n",
}

func yamlList(col int, items ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nitems:\n")
	for _, it := range items {
		b.WriteString(strings.Repeat(" ", col) + "- " + indent(strings.TrimSuffix(it, "\n"), col+2) + "\n")
	}
	b.WriteString("kind: List\nmetadata:\n  resourceVersion: \"\"\n")
	return b.String()
}

// indent indents every line of s but the first by n columns.
func indent(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}

func TestDecodeEquivalentToReference(t *testing.T) {
	for name, data := range equivalenceCases {
		t.Run(name, func(t *testing.T) {
			checkEquivalent(t, []byte(data))
		})
	}
	t.Run("dumps", func(t *testing.T) {
		for _, format := range dumpFormats {
			checkEquivalent(t, clusterDump(t, 300, format))
		}
	})
}

// The cut and the fast path are taken where they should be: a kubectl
// dump's List is cut into its items, and every item of it converted
// without sigs.k8s.io/yaml.
func TestDumpTakesTheFastPaths(t *testing.T) {
	for _, format := range []string{"yaml-list", "json-list"} {
		data := clusterDump(t, 50, format)
		docs, err := splitDocuments(data)
		if err != nil || len(docs) != 1 {
			t.Fatalf("%s: %d documents, %v", format, len(docs), err)
		}
		items, isJSON, ok := splitList(docs[0].raw)
		if !ok || len(items) != 1+10+10+50 || isJSON != (format == "json-list") {
			t.Fatalf("%s: cut %v into %d items (JSON %v)", format, ok, len(items), isJSON)
		}
		if isJSON {
			continue
		}
		for i, item := range items {
			if _, fast, err := itemJSON(item); !fast || err != nil {
				t.Errorf("item %d not converted by the fast path (%v):\n%s", i, err, item)
			}
		}
	}
	for _, doc := range bytes.Split(clusterDump(t, 50, "yaml-docs"), []byte("---\n")) {
		if len(doc) == 0 {
			continue
		}
		if _, fast, err := toJSON(doc); !fast || err != nil {
			t.Errorf("document not converted by the fast path (%v):\n%s", err, doc)
		}
	}
}

// fastYAMLToJSON gives sigs.k8s.io/yaml's bytes wherever it answers.
func TestFastYAMLMatchesSigsYAML(t *testing.T) {
	for name, data := range equivalenceCases {
		checkFastYAML(t, name, []byte(data))
		docs, _ := splitDocuments([]byte(data))
		for _, d := range docs {
			checkFastYAML(t, name, d.raw)
			if items, _, ok := splitList(d.raw); ok {
				for _, it := range items {
					checkFastYAML(t, name, it)
				}
			}
		}
	}
}

func checkFastYAML(t testing.TB, name string, data []byte) {
	t.Helper()
	js, ok := fastYAMLToJSON(data)
	if !ok {
		return
	}
	want, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		t.Errorf("%s: fast path converted what sigs.k8s.io/yaml refuses (%v):\n%s", name, err, data)
		return
	}
	if !bytes.Equal(js, want) {
		t.Errorf("%s: fast path differs:\n got %s\nwant %s\nfrom:\n%s", name, js, want, data)
	}
}

func FuzzFastYAML(f *testing.F) {
	for _, data := range equivalenceCases {
		f.Add([]byte(data))
	}
	f.Add(clusterDump(f, 3, "yaml-docs"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastYAML(t, "fuzz", data)
	})
}

func FuzzDecodeFile(f *testing.F) {
	for _, data := range equivalenceCases {
		f.Add([]byte(data))
	}
	f.Add(clusterDump(f, 3, "yaml-list"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEquivalent(t, data)
	})
}
