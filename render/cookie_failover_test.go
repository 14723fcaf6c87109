package render_test

import (
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// session-cookie-change-on-failure: a client whose cookie names an
// endpoint that refuses connections is moved to another endpoint, with a
// new cookie, when it is true; without it the request stays on that
// endpoint and fails. Both Services have a live endpoint (127.0.0.1) and
// one nothing listens on (127.0.0.2, the same port), neither health
// checked, so both are up as HAProxy sees them.
func TestSessionCookieChangeOnFailure(t *testing.T) {
	for _, prefix := range []string{render.AnnotationPrefix, render.NginxAnnotationPrefix} {
		t.Run(prefix, func(t *testing.T) {
			echo := startAnnEcho(t, "live", nil)
			cls, pt, pname, port, ready := "haproxy", networkingv1.PathTypePrefix, "http", int32(echo.port), true
			in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
				Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
			for _, change := range []string{"true", "false"} {
				name := "change-" + change
				in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
				in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
					Endpoints: []discoveryv1.Endpoint{
						{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
						{Addresses: []string{"127.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
					},
				})
				in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
					ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{
						prefix + "affinity": "cookie", prefix + "session-cookie-change-on-failure": change}},
					Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: name + ".test",
						IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
							Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
								Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
				})
			}
			opts := render.Options{}
			if prefix == render.NginxAnnotationPrefix {
				opts.AnnotationsCompat = render.CompatNginx
			}
			m := render.BuildModel(in, opts)
			if len(m.Problems) > 0 {
				t.Fatalf("problems: %v", m.Problems)
			}
			onHAProxies(t, m, func(t *testing.T, httpPort int) {
				// s2 is 127.0.0.2: slots are filled in address order.
				dead := map[string]string{"Cookie": "INGRESSCOOKIE=s2"}
				moved := &annClient{host: "change-true.test", httpPort: httpPort}
				resp := moved.expect(t, annReq{header: dead}, 200, "")
				if ck := affinityCookie(t, resp, "INGRESSCOOKIE"); ck.Value != "s1" {
					t.Errorf("change-on-failure true: new cookie %q, want s1 (the endpoint that answered)", ck.Raw)
				}
				kept := &annClient{host: "change-false.test", httpPort: httpPort}
				kept.expect(t, annReq{header: dead}, 503, "")
			})
		})
	}
}
