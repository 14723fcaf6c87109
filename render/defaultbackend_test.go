package render_test

import (
	"path/filepath"
	"slices"
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

// hostRoutesInputs are the objects of TestHostRoutes: default-backend and
// server-alias annotations (named by ann, under either prefix), hosts
// shared between namespaces a and b, and a Service in ops for
// --default-backend-service.
func hostRoutesInputs(ann func(name string) string) render.Inputs {
	cls := "haproxy"
	var in render.Inputs
	in.IngressClasses = []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}
	for _, s := range []string{"a/web", "a/errors", "b/bweb", "ops/fallback"} {
		ns, name, _ := strings.Cut(s, "/")
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})
		port, portName, ready := int32(1), "", true
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		})
	}
	prefix := networkingv1.PathTypePrefix
	ing := func(ns, name string, age int, host, path, svc string, kv ...string) {
		i := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{},
			CreationTimestamp: metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(age) * time.Hour))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: path, PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}}}}}}
		for j := 0; j+1 < len(kv); j += 2 {
			i.Annotations[ann(kv[j])] = kv[j+1]
		}
		in.Ingresses = append(in.Ingresses, i)
	}
	// site has a default backend for its host and two aliases; its
	// default-backend path is copied to them too.
	ing("a", "site", 0, "site.test", "/app", "web", "default-backend", "errors", "server-alias", "alias.test, *.wild.test")
	// An older alias of a host another namespace's younger Ingress has
	// rules for: the rule keeps the host.
	ing("a", "early", 0, "early.test", "/", "web", "server-alias", "served.test")
	ing("b", "served", 5, "served.test", "/x", "bweb")
	// shared.test has rules of a and b: a's default-backend is not
	// applied there.
	ing("b", "other", 1, "shared.test", "/b", "bweb")
	ing("a", "shared", 2, "shared.test", "/a", "web", "default-backend", "errors")
	// A younger alias of the same host as site's, with a path of the
	// same key: site's is older.
	ing("a", "late", 4, "late.test", "/app", "errors", "server-alias", "alias.test")
	// A default-backend under a rule's "/" path never applies: its own
	// (nothing reported), or another Ingress's (a notice).
	ing("a", "full", 3, "full.test", "/", "web", "default-backend", "errors")
	ing("a", "fuller", 4, "fuller.test", "/f", "web", "default-backend", "errors")
	ing("a", "fullest", 2, "fuller.test", "/", "web")
	// from-to-www-redirect both ways, and not to a host a rule has.
	ing("a", "www", 6, "example.test", "/", "web", "from-to-www-redirect", "true")
	ing("a", "www2", 6, "www.other.test", "/", "web", "from-to-www-redirect", "true")
	ing("a", "www3", 6, "blocked.test", "/", "web", "from-to-www-redirect", "true")
	ing("b", "wwwblk", 7, "www.blocked.test", "/x", "bweb")
	return in
}

// TestHostRoutes: requests through HAProxy 2.6 and 3.0 to the
// default-backend annotation's Service, to alias hosts, and to the
// --default-backend-service Service for requests no rule matches, under
// both annotation prefixes; explain predicts every answer.
func TestHostRoutes(t *testing.T) {
	const (
		web, errors, bweb, fallback = "svc:a/web", "svc:a/errors", "svc:b/bweb", "svc:ops/fallback"
	)
	reqs := []request{
		{host: "site.test", path: "/app/x", want: web},
		{host: "site.test", path: "/nothing", want: errors},
		{host: "site.test", path: "/", want: errors},
		{host: "alias.test", path: "/app", want: web},
		{host: "alias.test", path: "/zzz", want: errors},
		{host: "late.test", path: "/app", want: errors},
		{host: "a.wild.test", path: "/app", want: web},
		{host: "a.wild.test", path: "/other", want: errors},
		{host: "unknown.test", path: "/", want: fallback},
		{host: "shared.test", path: "/zzz", want: fallback},
		{host: "shared.test", path: "/a", want: web},
		{host: "shared.test", path: "/b", want: bweb},
		{host: "served.test", path: "/x", want: bweb},
		{host: "served.test", path: "/y", want: fallback},
		{host: "early.test", path: "/y", want: web},
		{host: "late.test", path: "/q", want: fallback},
		{host: "full.test", path: "/q", want: web},
		{host: "fuller.test", path: "/q", want: web},
		{host: "www.example.test", path: "/any?q=1", want: "redirect:http://example.test/any?q=1"},
		{https: true, host: "www.example.test", path: "/a/b", want: "redirect:https://example.test/a/b"},
		{host: "example.test", path: "/any", want: web},
		{host: "other.test", path: "/p", want: "redirect:http://www.other.test/p"},
		{host: "www.other.test", path: "/p", want: web},
		{host: "www.blocked.test", path: "/x", want: bweb},
		{host: "www.blocked.test", path: "/y", want: fallback},
	}
	for _, prefix := range []struct {
		name   string
		prefix string
		compat render.Compat
	}{{"ours", render.AnnotationPrefix, render.CompatNone}, {"nginx", render.NginxAnnotationPrefix, render.CompatNginx}} {
		t.Run(prefix.name, func(t *testing.T) {
			in := hostRoutesInputs(func(n string) string { return prefix.prefix + n })
			pointAtEchoServers(t, &in)
			opts := render.Options{AnnotationsCompat: prefix.compat, DefaultService: &render.ServiceRef{Namespace: "ops", Name: "fallback"}}
			m := render.BuildModel(in, opts)
			var reasons []string
			for _, p := range m.Problems {
				reasons = append(reasons, p.ObjectRef.String()+" "+string(p.Reason))
			}
			want := []string{"Ingress a/early AliasHostServed", "Ingress a/fuller Conflict", "Ingress a/late Conflict", "Ingress a/shared DefaultBackendSharedHost", "Ingress a/www3 AliasHostServed"}
			if !slices.Equal(reasons, want) {
				t.Errorf("problems %v, want %v\n%v", reasons, want, m.Problems)
			}
			runHostRoutes(t, m, reqs)
			// explain says where an unmatched request goes.
			for r, text := range map[render.Request]string{
				{Host: "site.test", Path: "/nothing"}: "the default-backend annotation of Ingress a/site",
				{Host: "alias.test", Path: "/app"}:    "server-alias",
				{Host: "other.test", Path: "/"}:       "from-to-www-redirect annotation of Ingress a/www2",
				{Host: "nowhere.test", Path: "/"}:     "the controller's default backend (--default-backend-service) ops/fallback",
			} {
				if got := m.Explain(r).String(); !strings.Contains(got, text) {
					t.Errorf("explain %s%s does not say %q:\n%s", r.Host, r.Path, text, got)
				}
			}
		})
	}
	t.Run("no flag", func(t *testing.T) {
		in := hostRoutesInputs(func(n string) string { return render.AnnotationPrefix + n })
		pointAtEchoServers(t, &in)
		m := render.BuildModel(in, render.Options{})
		runHostRoutes(t, m, []request{
			{host: "unknown.test", path: "/", want: "status:404"},
			{host: "site.test", path: "/nothing", want: errors},
		})
	})
}

// runHostRoutes renders m, checks explain's prediction of each request
// and the answers of HAProxy 2.6 and 3.0.
func runHostRoutes(t *testing.T, m *render.Model, reqs []request) {
	t.Helper()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort := freePort(t), freePort(t)
	out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl,
		HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for _, r := range reqs {
		if got, _ := explained(t, m, out, r); got != r.want {
			t.Errorf("explain %s: predicts %s, want %s\n%s", r, got, r.want, m.Explain(r.render()))
		}
	}
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newClient(httpPort, httpsPort)
			for _, r := range reqs {
				if got, _ := c.do(t, r); got != r.want {
					t.Errorf("%s: got %s, want %s", r, got, r.want)
				}
			}
		})
	}
}
