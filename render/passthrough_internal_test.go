package render

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// The rules of ssl-passthrough (passthrough.go) on the model: which hosts
// pass through, what is reported, and the same result from the
// incremental engine, whichever order the Ingresses come and go in.
func TestPassthroughModel(t *testing.T) {
	crt, key := testenv.SelfSigned(t, "a.example", "")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	base := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(false)},
		Services: []*corev1.Service{service("default", "web", corev1.ServicePort{Name: "http", Port: 80}),
			service("other", "web", corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("default", "web", "web-1", "http", 8443, "10.0.0.1"),
			slice("other", "web", "web-1", "http", 8080, "10.0.0.2")},
		Secrets: []*corev1.Secret{secret, {ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}},
	}
	pass := func(ns, name string, age int, host string, edit func(*networkingv1.Ingress), paths ...pathSpec) *networkingv1.Ingress {
		if len(paths) == 0 {
			paths = []pathSpec{{"Prefix", "/", "web", 80}}
		}
		i := ingress(ns, name, age, host, paths...)
		annotate(AnnotationPrefix+"ssl-passthrough", "true")(i)
		if edit != nil {
			edit(i)
		}
		return i
	}
	tlsFor := func(hosts ...string) func(*networkingv1.Ingress) {
		return func(i *networkingv1.Ingress) {
			i.Spec.TLS = append(i.Spec.TLS, networkingv1.IngressTLS{SecretName: "tls", Hosts: hosts})
		}
	}
	type want struct {
		reason Reason
		obj    string // namespace/name
		field  string
	}
	const path0, path1 = "spec.rules[0].http.paths[0]", "spec.rules[0].http.paths[1]"
	tests := []struct {
		name   string
		ings   []*networkingv1.Ingress
		compat Compat
		hosts  []string // passed through
		want   []want
	}{
		{"one host", []*networkingv1.Ingress{pass("default", "p", 0, "a.example", nil)}, CompatNone, []string{"a.example"}, nil},
		{"ingress-nginx's name", []*networkingv1.Ingress{func() *networkingv1.Ingress {
			i := ingress("default", "p", 0, "a.example", pathSpec{"ImplementationSpecific", "", "web", 80})
			annotate(NginxAnnotationPrefix+"ssl-passthrough", "true")(i)
			return i
		}()}, CompatNginx, []string{"a.example"}, nil},
		{"false", []*networkingv1.Ingress{func() *networkingv1.Ingress {
			i := ingress("default", "p", 0, "a.example", pathSpec{"Prefix", "/", "web", 80})
			annotate(AnnotationPrefix+"ssl-passthrough", "false")(i)
			return i
		}()}, CompatNone, nil, nil},
		{"other paths and a wildcard skipped", []*networkingv1.Ingress{
			pass("default", "p", 0, "a.example", nil, pathSpec{"Exact", "/", "web", 80}, pathSpec{"Prefix", "/", "web", 80}),
			pass("default", "w", 1, "*.b.example", nil),
		}, CompatNone, []string{"a.example"}, []want{{PassthroughUnsupported, "default/p", path0}, {PassthroughUnsupported, "default/w", path0}}},
		{"HTTP annotations ignored", []*networkingv1.Ingress{pass("default", "p", 0, "a.example",
			annotate(AnnotationPrefix+"rewrite-target", "/x", AnnotationPrefix+"balance", "leastconn"))},
			CompatNone, []string{"a.example"}, []want{
				{PassthroughUnsupported, "default/p", `metadata.annotations["haproxy-sidecar.io/balance"]`},
				{PassthroughUnsupported, "default/p", `metadata.annotations["haproxy-sidecar.io/rewrite-target"]`}}},
		{"an access restriction fails closed", []*networkingv1.Ingress{pass("default", "p", 0, "a.example",
			annotate(AnnotationPrefix+"allowlist-source-range", "10.0.0.0/8"))},
			CompatNone, nil, []want{
				{PassthroughUnsupported, "default/p", `metadata.annotations["haproxy-sidecar.io/allowlist-source-range"]`},
				{PassthroughUnsupported, "default/p", path0}}},
		{"its own TLS entry for the host", []*networkingv1.Ingress{pass("default", "p", 0, "a.example", tlsFor("a.example"))},
			CompatNone, []string{"a.example"}, []want{{PassthroughUnsupported, "default/p", "spec.tls[0].hosts"}}},
		{"an older Ingress owns the host", []*networkingv1.Ingress{
			ingress("other", "old", -1, "a.example", pathSpec{"Prefix", "/x", "web", 80}),
			pass("default", "p", 0, "a.example", nil),
		}, CompatNone, nil, []want{{Conflict, "default/p", path0}}},
		{"a younger Ingress on the host, with a TLS entry", []*networkingv1.Ingress{
			pass("default", "p", 0, "a.example", nil),
			func() *networkingv1.Ingress {
				i := ingress("other", "young", 1, "a.example", pathSpec{"Prefix", "/x", "web", 80})
				tlsFor("a.example")(i)
				return i
			}(),
		}, CompatNone, []string{"a.example"}, []want{{Conflict, "other/young", path0}, {Conflict, "other/young", "spec.tls[0].hosts"}}},
		{"a canary of the passed-through route", []*networkingv1.Ingress{
			pass("default", "p", 0, "a.example", nil),
			func() *networkingv1.Ingress {
				i := ingress("default", "c", 1, "a.example", pathSpec{"Prefix", "/", "web", 80})
				annotate(AnnotationPrefix+"canary-weight", "50")(i)
				return i
			}(),
		}, CompatNone, []string{"a.example"}, []want{{PassthroughUnsupported, "default/c", path0}}},
		{"a second path of the younger Ingress only", []*networkingv1.Ingress{
			pass("default", "p", 0, "a.example", nil),
			ingress("other", "young", 1, "b.example", pathSpec{"Prefix", "/", "web", 80}),
		}, CompatNone, []string{"a.example"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Ingresses = tt.ings
			opts := Options{AnnotationsCompat: tt.compat}
			m := BuildModel(in, opts)
			var hosts []string
			for _, r := range m.Passthrough {
				hosts = append(hosts, r.Host)
				be := m.Backends[slices.IndexFunc(m.Backends, func(b *Backend) bool { return b.Name == r.Backend })]
				if be.Policy == nil || !be.Policy.Passthrough {
					t.Errorf("backend %s of a passthrough route has no passthrough policy", be.Name)
				}
			}
			if !slices.Equal(hosts, tt.hosts) {
				t.Errorf("passed through %q, want %q", hosts, tt.hosts)
			}
			// explain follows the TCP frontend: a passed-through host's
			// HTTPS connections never reach HTTP routing, its plain-HTTP
			// requests are redirected.
			for _, h := range tt.hosts {
				e := m.Explain(Request{HTTPS: true, Host: h, Path: "/x"})
				if !e.Passthrough || e.Route == nil || e.Route.Host != h || e.Answer != AnswerServers || !strings.Contains(e.String(), "passed through unterminated") {
					t.Errorf("explain https://%s/x: %+v\n%s", h, e, e)
				}
				if e := m.Explain(Request{Host: h, Path: "/x"}); e.Passthrough || e.Answer != AnswerRedirect || e.Location != "https://"+h+"/x" {
					t.Errorf("explain http://%s/x: %s", h, e)
				}
			}
			if e := m.Explain(Request{HTTPS: true, Host: "c.example", Path: "/"}); e.Passthrough {
				t.Errorf("explain https://c.example/: %s", e)
			}
			var got []want
			for _, p := range m.Problems {
				if p.Reason == NoEndpoints {
					continue
				}
				got = append(got, want{p.Reason, p.Namespace + "/" + p.Name, p.Field})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems %v, want %v\n%v", got, tt.want, m.Problems)
			}
			// The engine, from nothing and through every prefix of the
			// list and back, gives the full build's model each time.
			var e Engine
			check := func(ings []*networkingv1.Ingress) {
				t.Helper()
				in := base
				in.Ingresses = ings
				full, inc := BuildModel(in, opts), e.Build(in, opts)
				if !slices.Equal(full.Problems, inc.Problems) || !slices.EqualFunc(full.Passthrough, inc.Passthrough, func(a, b *Route) bool { return *a == *b }) ||
					len(full.Routes) != len(inc.Routes) || !slices.Equal(full.TLSHosts, inc.TLSHosts) {
					t.Errorf("with %d Ingresses the engine differs:\nfull %v %v\n inc %v %v", len(ings), full.Problems, full.Passthrough, inc.Problems, inc.Passthrough)
				}
			}
			for n := 0; n <= len(tt.ings); n++ {
				check(tt.ings[:n])
			}
			for n := 1; n <= len(tt.ings); n++ {
				check(tt.ings[n:])
			}
			rev := slices.Clone(tt.ings)
			slices.Reverse(rev)
			for n := 0; n <= len(rev); n++ {
				check(rev[:n])
			}
		})
	}
}

// A passed-through host's other Ingresses are evaluated again when its
// owner changes (comes, goes, stops passing through, moves its rule),
// and not when another Ingress of the host changes a path: a tenant's
// passthrough Ingress on another tenant's host must not make each of
// that tenant's changes there evaluate the whole host again. Updates in
// place (a new object under the same name) at each step; the engine's
// model equals the full build's after every one.
func TestPassthroughOwnerInPlace(t *testing.T) {
	base := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(false)},
		Services: []*corev1.Service{service("b", "web", corev1.ServicePort{Name: "http", Port: 80}),
			service("a", "web", corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("b", "web", "web-1", "http", 8080, "10.0.0.1"),
			slice("a", "web", "web-1", "http", 8443, "10.0.0.2")},
	}
	const host = "h.example"
	passing := func(i *networkingv1.Ingress) *networkingv1.Ingress {
		annotate(AnnotationPrefix+"ssl-passthrough", "true")(i)
		return i
	}
	owner := ingress("b", "owner", 0, host, pathSpec{"Prefix", "/", "web", 80})
	b1 := ingress("b", "one", 1, host, pathSpec{"Prefix", "/one", "web", 80})
	b2 := ingress("b", "two", 2, host, pathSpec{"Prefix", "/two", "web", 80})
	b3 := ingress("b", "three", 3, host, pathSpec{"Prefix", "/three", "web", 80})
	tenantA := passing(ingress("a", "pass", 4, host, pathSpec{"Prefix", "/", "web", 80}))
	b1moved := ingress("b", "one", 1, host, pathSpec{"Exact", "/one", "web", 80})
	ownerPassing := passing(ingress("b", "owner", 0, host, pathSpec{"Prefix", "/", "web", 80}))
	ownerAway := ingress("b", "owner", 0, "elsewhere.example", pathSpec{"Prefix", "/", "web", 80})

	steps := []struct {
		name string
		ings []*networkingv1.Ingress
		// most: the most Ingresses the step may evaluate again (0: any).
		most int
	}{
		{"start", []*networkingv1.Ingress{owner, b1, b2, b3, tenantA}, 0},
		// b1's old and new entries, and tenant A's own Ingress.
		{"a neighbour's path changes", []*networkingv1.Ingress{owner, b1moved, b2, b3, tenantA}, 3},
		{"and back", []*networkingv1.Ingress{owner, b1, b2, b3, tenantA}, 3},
		{"the owner passes through", []*networkingv1.Ingress{ownerPassing, b1, b2, b3, tenantA}, 0},
		{"a neighbour's path changes under a passing owner", []*networkingv1.Ingress{ownerPassing, b1moved, b2, b3, tenantA}, 3},
		{"the owner leaves the host", []*networkingv1.Ingress{ownerAway, b1moved, b2, b3, tenantA}, 0},
		{"the owner comes back, passing", []*networkingv1.Ingress{ownerPassing, b1moved, b2, b3, tenantA}, 0},
		{"the owner is deleted", []*networkingv1.Ingress{b1moved, b2, b3, tenantA}, 0},
		{"the owner is back, not passing", []*networkingv1.Ingress{owner, b1moved, b2, b3, tenantA}, 0},
		// Tenant A's Conflict now names b/one: its owner changed with no
		// passthrough path coming or going.
		{"the owner is deleted, not passing", []*networkingv1.Ingress{b1moved, b2, b3, tenantA}, 0},
		{"tenant A is left alone on the host", []*networkingv1.Ingress{tenantA}, 0},
	}
	var e Engine
	for _, st := range steps {
		in := base
		in.Ingresses = st.ings
		full, inc := BuildModel(in, Options{}), e.Build(in, Options{})
		if !slices.Equal(full.Problems, inc.Problems) || !slices.EqualFunc(full.Passthrough, inc.Passthrough, func(a, b *Route) bool { return *a == *b }) ||
			!slices.EqualFunc(full.Routes, inc.Routes, func(a, b *Route) bool { return *a == *b }) {
			t.Fatalf("%s: the engine differs from the full build:\nfull %v %v\n inc %v %v", st.name, full.Problems, full.Passthrough, inc.Problems, inc.Passthrough)
		}
		if st.most > 0 && e.Evaluated() > st.most {
			t.Errorf("%s: evaluated %d Ingresses again, want at most %d", st.name, e.Evaluated(), st.most)
		}
	}
}
