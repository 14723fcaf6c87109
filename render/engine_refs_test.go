package render

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every reference index takes in, unindex takes out: Ingresses that refer
// to something of every kind, added and then removed, leave every index
// empty (an index that kept an entry would evaluate a gone Ingress's
// neighbours forever, and keep it alive).
func TestIndexUnindexSymmetric(t *testing.T) {
	primary := ingress("default", "primary", 0, "a.example", pathSpec{"Prefix", "/", "web", 80}, pathSpec{"Exact", "/x", "web", 80})
	annotate(AnnotationPrefix+"auth-basic-secret", "htpasswd", AnnotationPrefix+"backend-ca-secret", "ca", AnnotationPrefix+"balance", "leastconn", AnnotationPrefix+"auth-url", "http://auth/check",
		AnnotationPrefix+"default-backend", "web", AnnotationPrefix+"server-alias", "c.example")(primary)
	primary.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: svcBackend("web", 80)}
	primary.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"a.example", "b.example"}, SecretName: "tls"}}
	canary := ingress("default", "canary", 1, "a.example", pathSpec{"Prefix", "/", "web2", 80})
	annotate(AnnotationPrefix+"canary-weight", "10")(canary)
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(true)},
		Ingresses:      []*networkingv1.Ingress{primary, canary},
		Services: []*corev1.Service{service("default", "web", corev1.ServicePort{Port: 80}),
			service("default", "web2", corev1.ServicePort{Port: 80}), service("default", "auth", corev1.ServicePort{Port: 80})},
		Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "htpasswd"}}},
	}
	var g engine
	g.build(in, Options{})
	kinds := map[refKind]bool{}
	for _, e := range g.served {
		for _, r := range e.p.refs(nil) {
			kinds[r.kind] = true
		}
	}
	for k := refCanary; k <= refWeakHost; k++ {
		if !kinds[k] {
			t.Errorf("no reference of kind %d: the test no longer covers it", k)
		}
	}
	if len(g.served) != 2 || len(g.canaries) == 0 || len(g.svcUsers) == 0 || len(g.secretUsers) == 0 || len(g.canaryKeys) == 0 ||
		len(g.defaultUsers) == 0 || len(g.routeUsers) == 0 || len(g.settingsUsers) == 0 || len(g.sniUsers) == 0 || len(g.hostUsers) == 0 || len(g.weakUsers) == 0 {
		t.Fatalf("indexes after adding: served %d, canaries %v, services %v, secrets %v, canary keys %v, default %v, routes %v, settings %v, SNI %v",
			len(g.served), g.canaries, g.svcUsers, g.secretUsers, g.canaryKeys, g.defaultUsers, g.routeUsers, g.settingsUsers, g.sniUsers)
	}
	// auth-url's Service is a Service reference, and its backend is kept.
	if g.svcUsers["default/auth"].len() == 0 || !slices.Contains(g.names, "default_auth_80") {
		t.Errorf("auth-url's Service: users %v, backends %q", g.svcUsers["default/auth"], g.names)
	}
	in.Ingresses = nil
	g.build(in, Options{})
	if len(g.names) != 0 {
		t.Errorf("backends after removing: %q", g.names)
	}
	if len(g.served) != 0 || len(g.canaries) != 0 || len(g.svcUsers) != 0 || len(g.secretUsers) != 0 || len(g.canaryKeys) != 0 ||
		len(g.defaultUsers) != 0 || len(g.routeUsers) != 0 || len(g.settingsUsers) != 0 || len(g.sniUsers) != 0 || len(g.hostUsers) != 0 || len(g.weakUsers) != 0 {
		t.Errorf("indexes after removing: served %d, canaries %v, services %v, secrets %v, canary keys %v, default %v, routes %v, settings %v, SNI %v, hosts %v, weak hosts %v",
			len(g.served), g.canaries, g.svcUsers, g.secretUsers, g.canaryKeys, g.defaultUsers, g.routeUsers, g.settingsUsers, g.sniUsers, g.hostUsers, g.weakUsers)
	}
}
