package render

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Small constructors keep the tables readable.

func ourClass(def bool) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: DefaultControllerName}}
	if def {
		c.Annotations = map[string]string{DefaultClassAnnotation: "true"}
	}
	return c
}

type pathSpec struct {
	typ, path, svc string
	port           any // int or string
}

func ingress(ns, name string, age int, host string, paths ...pathSpec) *networkingv1.Ingress {
	cls := "haproxy"
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			CreationTimestamp: metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(age) * time.Hour))},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls},
	}
	rule := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
	for _, p := range paths {
		pt := networkingv1.PathType(p.typ)
		hp := networkingv1.HTTPIngressPath{Path: p.path, Backend: networkingv1.IngressBackend{Service: svcBackend(p.svc, p.port)}}
		if p.typ != "" {
			hp.PathType = &pt
		}
		rule.HTTP.Paths = append(rule.HTTP.Paths, hp)
	}
	ing.Spec.Rules = append(ing.Spec.Rules, rule)
	return ing
}

func svcBackend(name string, port any) *networkingv1.IngressServiceBackend {
	b := &networkingv1.IngressServiceBackend{Name: name}
	switch p := port.(type) {
	case int:
		b.Port.Number = int32(p)
	case string:
		b.Port.Name = p
	}
	return b
}

func service(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func slice(ns, svc, name, portName string, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for _, a := range addrs {
		ready := !strings.HasPrefix(a, "!")
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{strings.TrimPrefix(a, "!")},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es
}

// routeSummary is what the tables compare: "host|match|key -> backend".
func routeSummary(m *Model) []string {
	var out []string
	for _, r := range m.Routes {
		out = append(out, r.Host+"|"+r.Match.String()+"|"+r.Key+" -> "+r.Backend)
	}
	return out
}

func TestBuildModelRoutes(t *testing.T) {
	web := service("default", "web", corev1.ServicePort{Name: "http", Port: 80})
	webSlice := slice("default", "web", "web-1", "http", 8080, "10.0.0.2", "10.0.0.1", "!10.0.0.3")
	tests := []struct {
		name    string
		in      Inputs
		want    []string
		problem string // a substring of one reported problem, if any
	}{
		{
			name: "prefix keys drop trailing slashes and end in one slash",
			in: Inputs{Ingresses: []*networkingv1.Ingress{ingress("default", "a", 0, "a.example",
				pathSpec{"Prefix", "/foo/", "web", 80}, pathSpec{"Prefix", "/", "web", 80}, pathSpec{"Exact", "/foo/", "web", 80})}},
			want: []string{
				"a.example|Exact|a.example/foo/ -> default_web_80",
				"a.example|Prefix|a.example/foo/ -> default_web_80",
				"a.example|Prefix|a.example/ -> default_web_80",
			},
		},
		{
			name: "ImplementationSpecific is Prefix; an empty path is /",
			in: Inputs{Ingresses: []*networkingv1.Ingress{ingress("default", "a", 0, "",
				pathSpec{"ImplementationSpecific", "", "web", "http"})}},
			want: []string{"|Prefix|/ -> default_web_80"},
		},
		{
			name: "exact hosts sort before wildcards before rules without host",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "any", 0, "", pathSpec{"Prefix", "/", "web", 80}),
				ingress("default", "wild", 0, "*.example.com", pathSpec{"Prefix", "/", "web", 80}),
				ingress("default", "exact", 0, "x.example.com", pathSpec{"Prefix", "/", "web", 80}),
			}},
			want: []string{
				"x.example.com|Prefix|x.example.com/ -> default_web_80",
				"*.example.com|Prefix|*.example.com/ -> default_web_80",
				"|Prefix|/ -> default_web_80",
			},
		},
		{
			name: "the oldest Ingress wins a duplicate host, path and type",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "young", 5, "a.example", pathSpec{"Prefix", "/x", "young", 80}),
				ingress("default", "old", 1, "a.example", pathSpec{"Prefix", "/x/", "web", 80}),
			}},
			want:    []string{"a.example|Prefix|a.example/x/ -> default_web_80"},
			problem: `Ingress default/young: spec.rules[0].http.paths[0]: host "a.example" Prefix path "/x" is already served by Ingress default/old`,
		},
		{
			name: "Prefix and ImplementationSpecific on the same path conflict",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "/x", "web", 80}, pathSpec{"ImplementationSpecific", "/x", "web", 80}),
			}},
			want:    []string{"a.example|Prefix|a.example/x/ -> default_web_80"},
			problem: "spec.rules[0].http.paths[1]",
		},
		{
			name: "a missing port answers 503",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "/", "web", 81}),
			}},
			want:    []string{"a.example|Prefix|a.example/ -> _unavailable"},
			problem: "Service default/web has no port 81; answering 503",
		},
		{
			name: "Services are looked up in the Ingress's namespace only",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("other", "a", 0, "a.example", pathSpec{"Prefix", "/", "web", 80}),
			}},
			want:    []string{"a.example|Prefix|a.example/ -> _unavailable"},
			problem: "Service other/web not found",
		},
		{
			name: "a path that is not absolute is skipped, the rest stays",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "x", "web", 80}, pathSpec{"Exact", "/y", "web", 80}),
			}},
			want:    []string{"a.example|Exact|a.example/y -> default_web_80"},
			problem: `spec.rules[0].http.paths[0].path: "x": must start with '/'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.IngressClasses = append(tt.in.IngressClasses, ourClass(false))
			tt.in.Services = append(tt.in.Services, web)
			tt.in.EndpointSlices = append(tt.in.EndpointSlices, webSlice)
			m := BuildModel(tt.in, Options{})
			if got := routeSummary(m); !slices.Equal(got, tt.want) {
				t.Errorf("routes:\n got %q\nwant %q", got, tt.want)
			}
			if tt.problem != "" && !slices.ContainsFunc(m.Problems, func(p Problem) bool { return strings.Contains(p.String(), tt.problem) }) {
				t.Errorf("no problem containing %q in %v", tt.problem, m.Problems)
			}
			if tt.problem == "" && len(m.Problems) > 0 {
				t.Errorf("unexpected problems: %v", m.Problems)
			}
		})
	}
}

func TestBuildModelEndpoints(t *testing.T) {
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(true)},
		Ingresses:      []*networkingv1.Ingress{ingress("default", "a", 0, "", pathSpec{"Prefix", "/", "web", "http"})},
		Services: []*corev1.Service{service("default", "web",
			corev1.ServicePort{Name: "metrics", Port: 9000}, corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			// The same endpoint in two slices counts once; not-ready ones
			// and other ports' numbers are left out.
			slice("default", "web", "web-b", "http", 8080, "10.0.0.9", "!10.0.0.7", "10.0.0.1"),
			slice("default", "web", "web-a", "http", 8080, "10.0.0.1", "10.0.0.10", "10.0.0.11", "10.0.0.12"),
			slice("default", "web", "web-m", "metrics", 9100, "10.0.0.1"),
			slice("default", "other", "other-a", "http", 8080, "10.9.9.9"),
		},
	}
	m := BuildModel(in, Options{})
	if len(m.Backends) != 1 {
		t.Fatalf("backends: %+v", m.Backends)
	}
	be := m.Backends[0]
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:8080"), netip.MustParseAddrPort("10.0.0.9:8080"),
		netip.MustParseAddrPort("10.0.0.10:8080"), netip.MustParseAddrPort("10.0.0.11:8080"),
		netip.MustParseAddrPort("10.0.0.12:8080"),
	}
	if be.Name != "default_web_80" || !slices.Equal(be.Servers, want) {
		t.Errorf("backend %s servers %v, want default_web_80 %v", be.Name, be.Servers, want)
	}
	if be.Slots != 8 {
		t.Errorf("slots = %d, want 8 for 5 endpoints", be.Slots)
	}
}

// Slices the API server would have refused (they can come from manifest
// files) lose only the bad part, with a warning naming it.
func TestBuildModelBadEndpoints(t *testing.T) {
	v6 := slice("default", "web", "web-v6", "http", 8080, "fd00::1", "10.0.0.5")
	v6.AddressType = discoveryv1.AddressTypeIPv6
	in := Inputs{
		IngressClasses: []*networkingv1.IngressClass{ourClass(true)},
		Ingresses:      []*networkingv1.Ingress{ingress("default", "a", 0, "", pathSpec{"Prefix", "/", "web", "http"})},
		Services:       []*corev1.Service{service("default", "web", corev1.ServicePort{Name: "http", Port: 80})},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			slice("default", "web", "web-a", "http", 8080, "10.0.0.1 check", "fd00::2", "10.0.0.2"),
			slice("default", "web", "web-port", "http", 99999, "10.0.0.3"),
			v6,
		},
	}
	m := BuildModel(in, Options{})
	if len(m.Backends) != 1 {
		t.Fatalf("backends: %+v", m.Backends)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:8080"), netip.MustParseAddrPort("[fd00::1]:8080")}
	if got := m.Backends[0].Servers; !slices.Equal(got, want) {
		t.Errorf("servers %v, want %v", got, want)
	}
	var got []string
	for _, p := range m.Problems {
		got = append(got, p.String())
	}
	for _, w := range []string{
		`EndpointSlice default/web-a: endpoints[0].addresses[0]: "10.0.0.1 check" is not an IP address; endpoint skipped`,
		`EndpointSlice default/web-a: endpoints[1].addresses[0]: "fd00::2" is not an IPv4 address; endpoint skipped`,
		`EndpointSlice default/web-port: ports[0].port: 99999 is not a valid port; slice skipped for Service port "http"`,
		`EndpointSlice default/web-v6: endpoints[1].addresses[0]: "10.0.0.5" is not an IPv6 address; endpoint skipped`,
	} {
		if !slices.Contains(got, w) {
			t.Errorf("missing problem %q in %q", w, got)
		}
	}
}

// Names the API server never checked are quoted in reports, so a newline
// in one cannot forge a line.
func TestProblemStringQuotesOddNames(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{Kind: "Ingress", Namespace: "default", Name: "web-1.a", Field: "spec", Message: "m"}, "Ingress default/web-1.a: spec: m"},
		{Problem{Kind: "File", Name: "dir/a b.yaml (document 2)", Message: "m"}, "File dir/a b.yaml (document 2): m"},
		{Problem{Kind: "Ingress", Namespace: "x", Name: "a\nwarning: b", Message: "m"}, `Ingress x/"a\nwarning: b": m`},
		{Problem{Kind: "Ingress", Namespace: "x\u202e", Name: "a", Message: "m"}, `Ingress "x\u202e"/a: m`},
		{Problem{Kind: "IngressClass", Name: "\x1b[31mred", Message: "m"}, `IngressClass "\x1b[31mred": m`},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
}

func TestServerSlots(t *testing.T) {
	for n, want := range map[int]int{0: 4, 1: 4, 4: 4, 5: 8, 8: 8, 9: 16, 100: 128} {
		if got := ServerSlots(n); got != want {
			t.Errorf("ServerSlots(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestIngressClassSelection(t *testing.T) {
	other := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}
	mk := func(class *string, annotation string) *networkingv1.Ingress {
		ing := ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "/", "web", 80})
		ing.Spec.IngressClassName = class
		if annotation != "" {
			ing.Annotations = map[string]string{LegacyClassAnnotation: annotation}
		}
		return ing
	}
	ours, nginx := "haproxy", "nginx"
	tests := []struct {
		name       string
		ing        *networkingv1.Ingress
		defaultOur bool
		served     bool
	}{
		{"field names our class", mk(&ours, ""), false, true},
		{"field names another class", mk(&nginx, ""), true, false},
		{"field wins over annotation", mk(&nginx, "haproxy"), false, false},
		{"annotation names our class", mk(nil, "haproxy"), false, true},
		{"annotation names another class", mk(nil, "nginx"), true, false},
		{"no class, ours is default", mk(nil, ""), true, true},
		{"no class, no default", mk(nil, ""), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := BuildModel(Inputs{
				IngressClasses: []*networkingv1.IngressClass{ourClass(tt.defaultOur), other},
				Ingresses:      []*networkingv1.Ingress{tt.ing},
			}, Options{})
			if got := len(m.Served) == 1; got != tt.served {
				t.Errorf("served = %v, want %v (problems %v)", got, tt.served, m.Problems)
			}
		})
	}
}

func TestValidatePath(t *testing.T) {
	good := []string{"/", "/a/b", "/%20x", "/a-b_c.d~e", "/:@!$&()*+,;="}
	bad := []string{"", "a", "/a b", "/a\tb", "/a#b", "/a\"b", "/a'b", "/a\\b", "/a\nb", "/a\rb", "/a\x00b", "/%zz", "/%2", "/é", "/a?b", "/a{b}", "/a`b", "/" + strings.Repeat("a", MaxPathLength)}
	for _, p := range good {
		if err := validatePath(p); err != nil {
			t.Errorf("validatePath(%q) = %v, want ok", p, err)
		}
	}
	for _, p := range bad {
		if err := validatePath(p); err == nil {
			t.Errorf("validatePath(%q) = nil, want an error", p)
		}
	}
}

func TestValidateHost(t *testing.T) {
	good := []string{"a.example", "a-b.example.com", "*.example.com", "x"}
	bad := []string{"", "A.example", "1.2.3.4", "::1", "a..b", "*.*.b", "*", "a.*.b", "a b", "a\nb", "a.example.", "-a.example", strings.Repeat("a.", 127) + "aa"}
	for _, h := range good {
		if err := validateHost(h); err != nil {
			t.Errorf("validateHost(%q) = %v, want ok", h, err)
		}
	}
	for _, h := range bad {
		if err := validateHost(h); err == nil {
			t.Errorf("validateHost(%q) = nil, want an error", h)
		}
	}
}

func TestParseBind(t *testing.T) {
	for in, want := range map[string]string{":80": ":80", "0.0.0.0:8080": "0.0.0.0:8080", "[::]:443": "[::]:443", "127.0.0.1:1": "127.0.0.1:1"} {
		if got, err := ParseBind(in); err != nil || got != want {
			t.Errorf("ParseBind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"80", ":0", ":65536", "host:80", "1.2.3.4:80 ssl", "[fe80::1%eth0]:80", ":http"} {
		if got, err := ParseBind(in); err == nil {
			t.Errorf("ParseBind(%q) = %q, want an error", in, got)
		}
	}
}

// The fast paths never accept a name apimachinery rejects.
func FuzzSimpleNamesAgreeWithAPIMachinery(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a-b", "-a", "a-", "a..b", ".a", "a.", "A", "a_b", "1a", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isSimpleSubdomain(s) && len(validation.IsDNS1123Subdomain(s)) > 0 {
			t.Errorf("isSimpleSubdomain(%q) accepts what IsDNS1123Subdomain rejects", s)
		}
		if isSimpleLabel(s) && len(validation.IsDNS1123Label(s)) > 0 {
			t.Errorf("isSimpleLabel(%q) accepts what IsDNS1123Label rejects", s)
		}
		if validateServiceName(s) == nil && len(validation.IsDNS1035Label(s)) > 0 {
			t.Errorf("validateServiceName(%q) accepts what IsDNS1035Label rejects", s)
		}
	})
}
