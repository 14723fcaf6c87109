package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	var services []int
	for _, i := range ingresses {
		services = append(services, s.ServiceOf(i))
	}
	slices.Sort(services)
	services = slices.Compact(services)

	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	doc := func(obj any) error {
		if _, err := bw.WriteString("---\n"); err != nil {
			return err
		}
		return enc.Encode(obj)
	}
	if err := doc(NewIngressClass()); err != nil {
		return err
	}
	for _, j := range services {
		svc := NewService(ServiceName(j))
		svc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		es := NewEndpointSlice(ServiceName(j), s.Addrs(j, 0))
		es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
		if err := doc(svc); err != nil {
			return err
		}
		if err := doc(es); err != nil {
			return err
		}
	}
	for _, i := range ingresses {
		ing := s.Ingress(i)
		ing.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}
		if err := doc(ing); err != nil {
			return err
		}
	}
	return bw.Flush()
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
