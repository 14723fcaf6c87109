package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// dumpFormats are the shapes clusterDump writes: `kubectl get -o yaml` of
// several kinds (one List), one YAML document per object (helm template,
// kustomize build), `kubectl get -o json`, and one JSON document per
// object (e2e/bench's WriteManifests).
var dumpFormats = []string{"yaml-list", "yaml-docs", "json-list", "json-docs"}

// clusterDump is e2e/bench's synthetic cluster of n Ingresses (n/5
// Services, each with an EndpointSlice of 2 or 3 addresses; odd Ingresses
// route /api too) as the API server returns it (uid, resourceVersion,
// creationTimestamp, generation, empty status), in format.
func clusterDump(t testing.TB, n int, format string) []byte {
	created := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	seq := 0
	meta := func(name, ns string) metav1.ObjectMeta {
		seq++
		return metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", seq)),
			ResourceVersion: strconv.Itoa(1000 + seq), CreationTimestamp: created}
	}
	var objects []runtime.Object
	class := &networkingv1.IngressClass{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass"},
		ObjectMeta: meta("haproxy-sidecar", ""), Spec: networkingv1.IngressClassSpec{Controller: "haproxy-sidecar.io/controller"}}
	class.Annotations = map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}
	objects = append(objects, class)
	services := max(1, n/5)
	for j := range services {
		name := fmt.Sprintf("svc-%05d", j)
		objects = append(objects, &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(name, "bench"),
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
		port, pname, ready := int32(8080), "http", true
		es := &discoveryv1.EndpointSlice{TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: meta(name+"-1", "bench"), AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: &pname, Port: &port}}}
		es.Labels = map[string]string{discoveryv1.LabelServiceName: name}
		for k := range 2 + j%2 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.0.%d", 10+(j+k)%8)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		objects = append(objects, es)
	}
	for i := range n {
		prefix, className := networkingv1.PathTypePrefix, "haproxy-sidecar"
		backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: fmt.Sprintf("svc-%05d", i%services), Port: networkingv1.ServiceBackendPort{Name: "http"}}}
		paths := []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}
		if i%2 == 1 {
			paths = append(paths, networkingv1.HTTPIngressPath{Path: "/api", PathType: &prefix, Backend: backend})
		}
		ing := &networkingv1.Ingress{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
			ObjectMeta: meta(fmt.Sprintf("app-%05d", i), "bench"),
			Spec: networkingv1.IngressSpec{IngressClassName: &className, Rules: []networkingv1.IngressRule{{
				Host: fmt.Sprintf("app-%05d.bench.test", i), IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}}}}
		ing.Generation = 1
		objects = append(objects, ing)
	}
	var out bytes.Buffer
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	switch format {
	case "yaml-docs", "json-docs":
		for _, o := range objects {
			out.WriteString("---\n")
			if format == "yaml-docs" {
				out.Write(must(sigsyaml.Marshal(o)))
			} else {
				out.Write(must(json.Marshal(o)))
				out.WriteByte('\n')
			}
		}
	case "yaml-list", "json-list":
		list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
		for _, o := range objects {
			list.Items = append(list.Items, runtime.RawExtension{Object: o})
		}
		js := must(json.Marshal(list))
		if format == "yaml-list" {
			out.Write(must(sigsyaml.JSONToYAML(js)))
		} else {
			if err := json.Indent(&out, js, "", "    "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
		}
	default:
		t.Fatalf("unknown format %q", format)
	}
	return out.Bytes()
}

// BenchmarkDecode: one file of the 10k-Ingress cluster (10,000 Ingresses,
// 2,000 Services and EndpointSlices) decoded into objects, in each dump
// format; "reference" is the decoder before the cut and the fast path.
//
//	go test -run '^$' -bench Decode -benchmem ./manifest/
func BenchmarkDecode(b *testing.B) {
	for _, format := range dumpFormats {
		data := clusterDump(b, 10000, format)
		b.Run(format, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if objs, problems := decodeFile("f", data); len(objs) != 14001 || len(problems) > 0 {
					b.Fatalf("%d objects, problems %v", len(objs), problemStrings(problems))
				}
			}
		})
		b.Run(format+"/reference", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if objs, problems := referenceDecodeFile("f", data); len(objs) != 14001 || len(problems) > 0 {
					b.Fatalf("%d objects, problems %v", len(objs), problemStrings(problems))
				}
			}
		})
	}
}
