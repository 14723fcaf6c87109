package render_test

import (
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// service-upstream: requests go to the Service's cluster IP and port, not
// its endpoints. Each Service here has its cluster IP on the live echo
// server (127.0.0.1, the Service port being the echo's port) and its one
// endpoint where nothing listens (127.0.0.2): only service-upstream
// reaches the echo. A headless Service keeps its endpoints, with a notice.
func TestServiceUpstream(t *testing.T) {
	for _, prefix := range []string{render.AnnotationPrefix, render.NginxAnnotationPrefix} {
		t.Run(prefix, func(t *testing.T) {
			echo := startAnnEcho(t, "cluster-ip", nil)
			cls, pt, pname, port, ready := "haproxy", networkingv1.PathTypePrefix, "http", int32(echo.port), true
			in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
				Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
			for _, c := range []struct{ name, clusterIP, upstream string }{
				{"upstream", "127.0.0.1", "true"}, {"endpoints", "127.0.0.1", "false"}, {"headless", "None", "true"},
			} {
				in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: c.name},
					Spec: corev1.ServiceSpec{ClusterIP: c.clusterIP, Ports: []corev1.ServicePort{{Name: "http", Port: port}}}})
				in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: c.name, Labels: map[string]string{discoveryv1.LabelServiceName: c.name}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
					Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
				})
				in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
					ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: c.name, Annotations: map[string]string{prefix + "service-upstream": c.upstream}},
					Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: c.name + ".test",
						IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
							Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
								Name: c.name, Port: networkingv1.ServiceBackendPort{Number: port}}}}}}}}}},
				})
			}
			opts := render.Options{}
			if prefix == render.NginxAnnotationPrefix {
				opts.AnnotationsCompat = render.CompatNginx
			}
			m := render.BuildModel(in, opts)
			var notices int
			for _, p := range m.Problems {
				if p.Reason == render.UnsupportedBackend && p.ObjectRef.Name == "headless" && p.Field == "spec.clusterIP" {
					notices++
					continue
				}
				t.Errorf("unexpected problem: %s", p.Report())
			}
			if notices != 1 {
				t.Errorf("%d notices about the headless Service, want 1", notices)
			}
			onHAProxies(t, m, func(t *testing.T, httpPort int) {
				resp := (&annClient{host: "upstream.test", httpPort: httpPort}).expect(t, annReq{}, 200, "")
				if got := resp.Header.Get("X-Endpoint"); got != "cluster-ip" {
					t.Errorf("service-upstream: answered by %q, want the cluster IP's echo", got)
				}
				(&annClient{host: "endpoints.test", httpPort: httpPort}).expect(t, annReq{}, 503, "")
				(&annClient{host: "headless.test", httpPort: httpPort}).expect(t, annReq{}, 503, "")
			})
		})
	}
}
