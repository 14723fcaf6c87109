// Package manifest reads Kubernetes objects from YAML and JSON files, such
// as `kubectl get -o yaml` dumps, so that a configuration can be rendered
// and reproduced without a cluster.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Extensions of the files read; everything else under the path is ignored.
var extensions = []string{".yaml", ".yml", ".json"}

// Load reads every manifest file under path (a file or a directory, walked
// recursively in lexical order). Documents that cannot be decoded, unknown
// kinds and duplicates are reported as problems and skipped; only an
// unreadable path is an error.
func Load(path string) (render.Inputs, []render.Problem, error) {
	files, err := listFiles(path)
	if err != nil {
		return render.Inputs{}, nil, err
	}
	l := &loader{seen: map[string]string{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return render.Inputs{}, nil, fmt.Errorf("reading manifests: %w", err)
		}
		l.file(f, data)
	}
	return l.in, l.problems, nil
}

// Decode reads the objects of one file's content; name is used in reports.
func Decode(name string, data []byte) (render.Inputs, []render.Problem) {
	l := &loader{seen: map[string]string{}}
	l.file(name, data)
	return l.in, l.problems
}

func listFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Editors and Kubernetes ConfigMap volumes keep hidden
			// directories (..data, .git); their files are not manifests.
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), ".") && slices.Contains(extensions, strings.ToLower(filepath.Ext(p))) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	slices.Sort(files)
	return files, nil
}

type loader struct {
	in       render.Inputs
	problems []render.Problem
	seen     map[string]string // kind/namespace/name → where first seen
}

func (l *loader) report(sev render.Severity, where, format string, args ...any) {
	l.problems = append(l.problems, render.Problem{
		Severity: sev, Kind: "File", Name: where, Message: fmt.Sprintf(format, args...),
	})
}

func (l *loader) file(name string, data []byte) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		where := fmt.Sprintf("%s (document %d)", name, doc)
		if err != nil {
			l.report(render.Warning, where, "cannot be read: %v; rest of file skipped", err)
			return
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		l.decode(where, raw)
	}
}

// stripComments drops YAML comment lines so that a document holding only
// comments counts as empty.
func stripComments(b []byte) []byte {
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

func (l *loader) decode(where string, raw []byte) {
	// JSON is YAML, so the YAML-to-JSON step handles both.
	js, err := utilyaml.ToJSON(raw)
	if err != nil {
		l.report(render.Warning, where, "invalid YAML: %v; skipped", err)
		return
	}
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) && gvk != nil {
			l.report(render.Notice, where, "kind %s is not used; ignored", gvk.String())
			return
		}
		l.report(render.Warning, where, "cannot decode: %v; skipped", err)
		return
	}
	l.add(where, obj)
}

func (l *loader) add(where string, obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.List:
		for i, item := range o.Items {
			l.decode(fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *metav1.List:
		for i, item := range o.Items {
			l.decode(fmt.Sprintf("%s items[%d]", where, i), item.Raw)
		}
	case *networkingv1.Ingress:
		if l.unique(where, "Ingress", &o.ObjectMeta, true) {
			l.in.Ingresses = append(l.in.Ingresses, o)
		}
	case *networkingv1.IngressClass:
		if l.unique(where, "IngressClass", &o.ObjectMeta, false) {
			l.in.IngressClasses = append(l.in.IngressClasses, o)
		}
	case *corev1.Service:
		if l.unique(where, "Service", &o.ObjectMeta, true) {
			l.in.Services = append(l.in.Services, o)
		}
	case *discoveryv1.EndpointSlice:
		if l.unique(where, "EndpointSlice", &o.ObjectMeta, true) {
			l.in.EndpointSlices = append(l.in.EndpointSlices, o)
		}
	case *corev1.Secret:
		if l.unique(where, "Secret", &o.ObjectMeta, true) {
			l.in.Secrets = append(l.in.Secrets, o)
		}
	case *corev1.ConfigMap:
		if l.unique(where, "ConfigMap", &o.ObjectMeta, true) {
			l.in.ConfigMaps = append(l.in.ConfigMaps, o)
		}
	default:
		kind := obj.GetObjectKind().GroupVersionKind().String()
		l.report(render.Notice, where, "kind %s is not used; ignored", kind)
	}
}

// unique defaults the namespace and reports a second object with the same
// kind, namespace and name; the first one read stays.
func (l *loader) unique(where, kind string, m *metav1.ObjectMeta, namespaced bool) bool {
	if namespaced && m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
	if !namespaced {
		m.Namespace = ""
	}
	key := kind + "/" + m.Namespace + "/" + m.Name
	if first, dup := l.seen[key]; dup {
		l.report(render.Warning, where, "%s %s/%s is also defined in %s; this copy ignored", kind, m.Namespace, m.Name, first)
		return false
	}
	l.seen[key] = where
	return true
}
