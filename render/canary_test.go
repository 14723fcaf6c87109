package render_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A canary takes a share only of a route its own namespace serves: one in
// another namespace, even with canary-weight 100 and for a route its
// tenant can see, gets no request and is reported. A canary of its own
// namespace's route at weight 100 takes every request, and explain says
// so and names the canary's backend. Through HAProxy 2.6 and 3.0, with
// the full build and the incremental engine.
func TestCanaryStaysInItsNamespace(t *testing.T) {
	cls, pt := "haproxy", networkingv1.PathTypePrefix
	in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
	echoes := map[string]*annEcho{}
	addService := func(ns, name string) {
		e := startAnnEcho(t, ns+"-"+name, nil)
		echoes[ns+"/"+name] = e
		port, pname, ready := int32(e.port), "http", true
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		})
	}
	addIngress := func(ns, name, host, svc string, age time.Duration, ann map[string]string) {
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann,
			CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(age))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
	}
	all := map[string]string{render.AnnotationPrefix + "canary-weight": "100"}
	// Team default serves shared.test; tenant tries to take it over.
	addService("default", "web")
	addIngress("default", "web", "shared.test", "web", 0, nil)
	addService("tenant", "takeover")
	addIngress("tenant", "takeover", "shared.test", "takeover", time.Hour, all)
	// Tenant's own route and its canary at 100%.
	addService("tenant", "app")
	addService("tenant", "app-v2")
	addIngress("tenant", "app", "tenant.test", "app", 0, nil)
	addIngress("tenant", "app-v2", "tenant.test", "app-v2", time.Hour, all)

	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := freePort(t)
	cfg := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	full := render.BuildModel(in, render.Options{})
	incremental, out, err := haproxycfg.NewIncremental(cfg).Render(in, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*render.Model{"full build": full, "incremental": incremental} {
		var reasons []string
		for _, p := range m.Problems {
			reasons = append(reasons, p.ObjectRef.String()+" "+string(p.Reason))
		}
		if strings.Join(reasons, ", ") != "Ingress tenant/takeover "+string(render.CanaryOtherNamespace) {
			t.Errorf("%s: problems %v, want the takeover canary reported as CanaryOtherNamespace", name, m.Problems)
		}
		for _, r := range m.Routes {
			if r.Host == "shared.test" && r.Canary != nil {
				t.Errorf("%s: shared.test has the canary %s", name, r.Canary.Origin)
			}
		}
	}

	e := full.Explain(render.Request{Host: "tenant.test", Path: "/"})
	explained := e.String()
	for _, want := range []string{"takes all requests; the route's backend below gets none", "=> backend tenant_app-v2_80 "} {
		if !strings.Contains(explained, want) {
			t.Errorf("explain lacks %q:\n%s", want, explained)
		}
	}
	if e.Backend != "tenant_app-v2_80" {
		t.Errorf("explain names backend %s, want the canary's tenant_app-v2_80", e.Backend)
	}

	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			for host, want := range map[string]string{"shared.test": "default-web", "tenant.test": "tenant-app-v2"} {
				c := &annClient{host: host, httpPort: httpPort}
				for i := range 20 {
					if got := c.expect(t, annReq{}, 200, "").Header.Get("X-Endpoint"); got != want {
						t.Fatalf("%s request %d answered by %q, want %q", host, i, got, want)
					}
				}
			}
		})
	}
}
