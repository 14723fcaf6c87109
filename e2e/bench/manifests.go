package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// NewIngressClass is the IngressClass Base creates: ClassName, for
// ControllerName, the default class.
func NewIngressClass() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass"},
		ObjectMeta: metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: ControllerName},
	}
}

// WriteManifests writes, for `haproxy-sidecar render --manifests`, the
// objects the loader would create for the given Ingresses of s (all of
// them when ingresses is nil): the IngressClass, the Services those
// Ingresses route to with their EndpointSlices (group 0), and the
// Ingresses, as JSON documents separated by "---". TLS Secrets are not
// written: s must have none.
func WriteManifests(w io.Writer, s Spec, ingresses []int) error {
	if s.TLSSecrets > 0 {
		return fmt.Errorf("WriteManifests: TLS Secrets are not supported")
	}
	if ingresses == nil {
		ingresses = make([]int, s.Ingresses)
		for i := range ingresses {
			ingresses[i] = i
		}
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err := s.eachObject(ingresses, func(obj runtime.Object) error {
		if _, err := bw.WriteString("---\n"); err != nil {
			return err
		}
		return enc.Encode(obj)
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// eachObject calls f with the objects WriteManifests writes, in its order:
// the IngressClass, each Service followed by its EndpointSlice, the
// Ingresses. Each has its TypeMeta set.
func (s Spec) eachObject(ingresses []int, f func(runtime.Object) error) error {
	var services []int
	for _, i := range ingresses {
		services = append(services, s.ServiceOf(i))
	}
	slices.Sort(services)
	services = slices.Compact(services)
	if err := f(NewIngressClass()); err != nil {
		return err
	}
	for _, j := range services {
		svc := NewService(ServiceName(j))
		svc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		es := NewEndpointSlice(ServiceName(j), s.Addrs(j, 0))
		es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
		if err := f(svc); err != nil {
			return err
		}
		if err := f(es); err != nil {
			return err
		}
	}
	for _, i := range ingresses {
		ing := s.Ingress(i)
		ing.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}
		if err := f(ing); err != nil {
			return err
		}
	}
	return nil
}

// DumpFormat is a shape in which `kubectl get -o yaml|json` and friends
// write objects.
type DumpFormat string

const (
	// YAMLList is `kubectl get -o yaml` of several kinds: one document,
	// `apiVersion: v1`, `kind: List`, the objects under `items:`.
	YAMLList DumpFormat = "yaml-list"
	// YAMLDocs is one YAML document per object, separated by `---` (what
	// `helm template` and `kustomize build` write).
	YAMLDocs DumpFormat = "yaml-docs"
	// JSONList is `kubectl get -o json`: one List object, items indented.
	JSONList DumpFormat = "json-list"
)

// DumpFormats are the formats WriteDump writes.
var DumpFormats = []DumpFormat{YAMLList, YAMLDocs, JSONList}

// WriteDump writes the objects of WriteManifests in format, as the API
// server returns them: with the uid, resourceVersion, creationTimestamp
// and generation it sets, and an empty status, as `kubectl get` dumps
// them (managedFields left out, as kubectl does by default).
func WriteDump(w io.Writer, s Spec, ingresses []int, format DumpFormat) error {
	if s.TLSSecrets > 0 {
		return fmt.Errorf("WriteDump: TLS Secrets are not supported")
	}
	if ingresses == nil {
		ingresses = make([]int, s.Ingresses)
		for i := range ingresses {
			ingresses[i] = i
		}
	}
	created := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	var objects []runtime.Object
	n := 0
	err := s.eachObject(ingresses, func(obj runtime.Object) error {
		n++
		m := obj.(metav1.Object)
		m.SetUID(types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)))
		m.SetResourceVersion(fmt.Sprint(1000 + n))
		m.SetCreationTimestamp(created)
		if _, ok := obj.(*networkingv1.Ingress); ok {
			m.SetGeneration(1)
		}
		objects = append(objects, obj)
		return nil
	})
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	switch format {
	case YAMLDocs:
		for _, obj := range objects {
			y, err := yaml.Marshal(obj)
			if err != nil {
				return err
			}
			bw.WriteString("---\n")
			bw.Write(y)
		}
	case YAMLList, JSONList:
		list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, ListMeta: metav1.ListMeta{ResourceVersion: ""}}
		for _, obj := range objects {
			list.Items = append(list.Items, runtime.RawExtension{Object: obj})
		}
		js, err := json.Marshal(list)
		if err != nil {
			return err
		}
		if format == JSONList {
			var out bytes.Buffer
			if err := json.Indent(&out, js, "", "    "); err != nil {
				return err
			}
			out.WriteByte('\n')
			bw.Write(out.Bytes())
			break
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		bw.Write(y)
	default:
		return fmt.Errorf("WriteDump: unknown format %q", format)
	}
	return bw.Flush()
}

// WriteDumpFile is WriteDump into a new file at path.
func WriteDumpFile(path string, s Spec, ingresses []int, format DumpFormat) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteDump(f, s, ingresses, format); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteManifestFile is WriteManifests into a new file at path.
func WriteManifestFile(path string, s Spec, ingresses []int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteManifests(f, s, ingresses); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
