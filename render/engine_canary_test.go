package render

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A canary's backend is the one its primary has for the canary's Service,
// with the primary's users: when the primary's auth Secret changes, the
// engine must make that backend again for both, even where the two share
// it (the canary names the primary's Service).
func TestIncrementalCanaryFollowsPrimarySecret(t *testing.T) {
	users := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "users"},
			Data: map[string][]byte{"auth": []byte(name + ":$1$saltsalt$" + strings.Repeat("A", 22) + "\n")}}
	}
	primary := ingress("default", "primary", 0, "a.example", pathSpec{"Prefix", "/", "web", 80})
	annotate(AnnotationPrefix+"auth-basic-secret", "users")(primary)
	canary := ingress("default", "canary", 1, "a.example", pathSpec{"Prefix", "/", "web", 80})
	annotate(AnnotationPrefix+"canary-by-header", "X-Canary")(canary)
	in := Inputs{IngressClasses: []*networkingv1.IngressClass{ourClass(true)}, Ingresses: []*networkingv1.Ingress{primary, canary},
		Services:       []*corev1.Service{service("default", "web", corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("default", "web", "web-1", "http", 8080, "10.0.0.1")},
		Secrets:        []*corev1.Secret{users("alice")}}
	var g Engine
	m := g.Build(in, Options{})
	in.Secrets = []*corev1.Secret{users("bob")}
	in.Unchanged = IngressesKind | ServicesKind | EndpointSlicesKind
	m = g.Build(in, Options{Previous: m})
	for _, be := range m.Backends {
		if be.Name == "default_web_80:primary" && (len(be.Users) != 1 || be.Users[0].Name != "bob") {
			t.Errorf("backend %s has users %v after the Secret changed, want bob", be.Name, be.Users)
		}
	}
}
