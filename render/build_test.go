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

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
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
		reason  Reason // the reason of that problem
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
			reason:  Conflict,
		},
		{
			name: "Prefix and ImplementationSpecific on the same path conflict",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "/x", "web", 80}, pathSpec{"ImplementationSpecific", "/x", "web", 80}),
			}},
			want:    []string{"a.example|Prefix|a.example/x/ -> default_web_80"},
			problem: "spec.rules[0].http.paths[1]",
			reason:  Conflict,
		},
		{
			name: "a missing port answers 503",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "/", "web", 81}),
			}},
			want:    []string{"a.example|Prefix|a.example/ -> _unavailable"},
			problem: "Service default/web has no port 81; answering 503",
			reason:  BackendPortNotFound,
		},
		{
			name: "Services are looked up in the Ingress's namespace only",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("other", "a", 0, "a.example", pathSpec{"Prefix", "/", "web", 80}),
			}},
			want:    []string{"a.example|Prefix|a.example/ -> _unavailable"},
			problem: "Service other/web not found",
			reason:  BackendNotFound,
		},
		{
			name: "a path that is not absolute is skipped, the rest stays",
			in: Inputs{Ingresses: []*networkingv1.Ingress{
				ingress("default", "a", 0, "a.example", pathSpec{"Prefix", "x", "web", 80}, pathSpec{"Exact", "/y", "web", 80}),
			}},
			want:    []string{"a.example|Exact|a.example/y -> default_web_80"},
			problem: `spec.rules[0].http.paths[0].path: "x": must start with '/'`,
			reason:  InvalidPath,
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
			if tt.problem != "" && !slices.ContainsFunc(m.Problems, func(p Problem) bool {
				return strings.Contains(p.String(), tt.problem) && p.Reason == tt.reason
			}) {
				t.Errorf("no problem containing %q with reason %s in %+v", tt.problem, tt.reason, m.Problems)
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
		got = append(got, string(p.Reason)+" "+p.String())
	}
	for _, w := range []string{
		`InvalidAddress EndpointSlice default/web-a: endpoints[0].addresses[0]: "10.0.0.1 check" is not an IP address; endpoint skipped`,
		`InvalidAddress EndpointSlice default/web-a: endpoints[1].addresses[0]: "fd00::2" is not an IPv4 address; endpoint skipped`,
		`InvalidPort EndpointSlice default/web-port: ports[0].port: 99999 is not a valid port; slice skipped for Service port "http"`,
		`InvalidAddress EndpointSlice default/web-v6: endpoints[1].addresses[0]: "10.0.0.5" is not an IPv6 address; endpoint skipped`,
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
		{Problem{ObjectRef: ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web-1.a"}, Field: "spec", Message: "m"}, "Ingress default/web-1.a: spec: m"},
		{Problem{ObjectRef: ObjectRef{Kind: "File", Name: "dir/a b.yaml (document 2)"}, Message: "m"}, "File dir/a b.yaml (document 2): m"},
		{Problem{ObjectRef: ObjectRef{Kind: "Ingress", Namespace: "x", Name: "a\nwarning: b"}, Message: "m"}, `Ingress x/"a\nwarning: b": m`},
		{Problem{ObjectRef: ObjectRef{Kind: "Ingress", Namespace: "x\u202e", Name: "a"}, Message: "m"}, `Ingress "x\u202e"/a: m`},
		{Problem{ObjectRef: ObjectRef{Kind: "IngressClass", Name: "\x1b[31mred"}, Message: "m"}, `IngressClass "\x1b[31mred": m`},
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

// Every kind of problem the builder reports carries its object, field,
// severity and reason, set where it is created. Each case breaks one thing
// and lists every problem that follows; messages are left to the goldens.
func TestBuildModelProblemReasons(t *testing.T) {
	crt, key := testenv.SelfSigned(t, "a.example", "")
	tlsSecret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "opaque"}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	external := service("default", "external", corev1.ServicePort{Name: "http", Port: 80})
	external.Spec.Type = corev1.ServiceTypeExternalName
	services := []*corev1.Service{
		service("default", "web", corev1.ServicePort{Name: "http", Port: 80}),
		service("default", "dns", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}),
		service("default", "idle", corev1.ServicePort{Name: "http", Port: 80}),
		external,
	}
	webSlice := slice("default", "web", "web-1", "http", 8080, "10.0.0.1")
	dnsSlice := slice("default", "dns", "dns-1", "dns", 53, "10.0.0.1")

	// web is an Ingress for a.example with one path; edit breaks it.
	web := func(edit func(*networkingv1.Ingress)) *networkingv1.Ingress {
		ing := ingress("default", "web", 0, "a.example", pathSpec{"Prefix", "/", "web", 80})
		if edit != nil {
			edit(ing)
		}
		return ing
	}
	withPath := func(p pathSpec) func(*networkingv1.Ingress) {
		return func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths = ingress("", "", 0, "", p).Spec.Rules[0].HTTP.Paths
		}
	}
	withTLS := func(secret string, hosts ...string) func(*networkingv1.Ingress) {
		return func(ing *networkingv1.Ingress) {
			ing.Spec.TLS = append(ing.Spec.TLS, networkingv1.IngressTLS{SecretName: secret, Hosts: hosts})
		}
	}
	resource := &networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Bucket", Name: "b"}}
	ingressRef := ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"}
	younger := ObjectRef{Kind: "Ingress", Namespace: "default", Name: "younger"}
	settingsRef := ObjectRef{Kind: "ConfigMap", Namespace: "default", Name: "settings"}
	settings := func(data, binary map[string]string) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "settings"}, Data: data}
		for k, v := range binary {
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[k] = []byte(v)
		}
		return cm
	}
	badSlice := func(name string, edit func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
		es := slice("default", "web", name, "http", 8080, "10.0.0.2")
		edit(es)
		return es
	}
	const path0 = "spec.rules[0].http.paths[0]"

	tests := []struct {
		name string
		in   Inputs
		opts Options
		want []Problem // Message is not compared
	}{
		{"invalid namespace", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) { i.Namespace = "Bad NS" })}}, Options{},
			[]Problem{{Warning, ObjectRef{"Ingress", "Bad NS", "web"}, "metadata.namespace", InvalidName, ""}}},
		{"invalid name", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) { i.Name = "Bad_Name" })}}, Options{},
			[]Problem{{Warning, ObjectRef{"Ingress", "default", "Bad_Name"}, "metadata.name", InvalidName, ""}}},
		{"another controller's class", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) {
			c := "nginx"
			i.Spec.IngressClassName = &c
		})}}, Options{},
			[]Problem{{Notice, ingressRef, "", NotOurClass, ""}}},
		{"invalid rule host", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "Bad Host" })}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.rules[0].host", InvalidHost, ""}}},
		{"missing pathType", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"", "/", "web", 80}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".pathType", InvalidPathType, ""}}},
		{"unknown pathType", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Regex", "/", "web", 80}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".pathType", InvalidPathType, ""}}},
		{"relative path", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "x", "web", 80}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".path", InvalidPath, ""}}},
		{"catastrophic regular expression", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) {
			withPath(pathSpec{"Prefix", "/(a+)+$", "web", 80})(i)
			annotate(AnnotationPrefix+"use-regex", "true")(i)
		})}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".path", InvalidRegex, ""}}},
		{"resource backend on a path", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend = *resource
		})}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend", UnsupportedBackend, ""}}},
		{"resource default backend", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) { i.Spec.DefaultBackend = resource })}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.defaultBackend", UnsupportedBackend, ""}}},
		{"invalid Service name", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "Web_1", 80}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.name", InvalidBackend, ""}}},
		{"port with name and number", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name = "http"
		})}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port", InvalidBackend, ""}}},
		{"invalid port name", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "web", "Bad_Port"}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port.name", InvalidBackend, ""}}},
		{"no port", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "web", nil}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port", InvalidBackend, ""}}},
		{"missing Service", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "ghost", 80}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.name", BackendNotFound, ""}}},
		{"ExternalName Service without a name", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "external", 80}))}}, Options{},
			[]Problem{
				{Notice, ingressRef, path0 + ".backend.service.name", InvalidExternalName, ""},
				{Warning, ObjectRef{Kind: "Service", Namespace: "default", Name: "external"}, "spec.externalName", InvalidExternalName, ""},
			}},
		{"ExternalName Service without the port name", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "external", "https"}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port", BackendPortNotFound, ""}}},
		{"missing Service port", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "web", 81}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port", BackendPortNotFound, ""}}},
		{"UDP Service port", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "dns", 53}))}}, Options{},
			[]Problem{{Warning, ingressRef, path0 + ".backend.service.port", UnsupportedBackend, ""}}},
		{"no ready endpoints", Inputs{Ingresses: []*networkingv1.Ingress{web(withPath(pathSpec{"Prefix", "/", "idle", 80}))}}, Options{},
			[]Problem{{Notice, ingressRef, path0 + ".backend.service", NoEndpoints, ""}}},
		{"path served by an older Ingress", Inputs{Ingresses: []*networkingv1.Ingress{
			web(nil), ingress("default", "younger", 1, "a.example", pathSpec{"Prefix", "/", "web", 80}),
		}}, Options{},
			[]Problem{{Warning, younger, path0, Conflict, ""}}},
		{"default backend of an older Ingress", Inputs{Ingresses: []*networkingv1.Ingress{
			web(func(i *networkingv1.Ingress) {
				i.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: svcBackend("web", 80)}
			}),
			func() *networkingv1.Ingress {
				i := ingress("default", "younger", 1, "b.example", pathSpec{"Prefix", "/", "web", 80})
				i.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: svcBackend("web", 80)}
				return i
			}(),
		}}, Options{},
			[]Problem{{Warning, younger, "spec.defaultBackend", Conflict, ""}}},
		{"TLS host with another Secret than an older Ingress's", Inputs{
			Ingresses: []*networkingv1.Ingress{
				web(withTLS("tls", "a.example")),
				func() *networkingv1.Ingress {
					i := ingress("default", "younger", 1, "a.example", pathSpec{"Prefix", "/other", "web", 80})
					withTLS("tls-2", "a.example")(i)
					return i
				}(),
			},
			Secrets: []*corev1.Secret{tlsSecret("tls"), tlsSecret("tls-2")},
		}, Options{},
			[]Problem{{Warning, younger, "spec.tls[0].hosts", Conflict, ""}}},
		{"empty secretName", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS(""))}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.tls[0].secretName", InvalidSecretName, ""}}},
		{"invalid secretName", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS("Bad_Secret"))}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.tls[0].secretName", InvalidSecretName, ""}}},
		{"one invalid TLS host", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS("tls", "Bad Host", "a.example"))}, Secrets: []*corev1.Secret{tlsSecret("tls")}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.tls[0].hosts[0]", InvalidHost, ""}}},
		{"no valid TLS host", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS("tls", "Bad Host"))}, Secrets: []*corev1.Secret{tlsSecret("tls")}}, Options{},
			[]Problem{
				{Warning, ingressRef, "spec.tls[0].hosts[0]", InvalidHost, ""},
				{Warning, ingressRef, "spec.tls[0].hosts", InvalidHost, ""},
			}},
		{"missing TLS Secret", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS("tls", "a.example"))}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.tls[0].secretName", TLSSecretNotFound, ""}}},
		{"TLS Secret of the wrong type", Inputs{Ingresses: []*networkingv1.Ingress{web(withTLS("opaque", "a.example"))}, Secrets: []*corev1.Secret{opaque}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.tls[0].secretName", TLSSecretInvalid, ""}}},
		{"FQDN EndpointSlice", Inputs{Ingresses: []*networkingv1.Ingress{web(nil)}, EndpointSlices: []*discoveryv1.EndpointSlice{
			badSlice("web-fqdn", func(es *discoveryv1.EndpointSlice) { es.AddressType = discoveryv1.AddressTypeFQDN }),
		}}, Options{},
			[]Problem{{Notice, ObjectRef{"EndpointSlice", "default", "web-fqdn"}, "addressType", UnsupportedAddressType, ""}}},
		{"EndpointSlice port out of range", Inputs{Ingresses: []*networkingv1.Ingress{web(nil)}, EndpointSlices: []*discoveryv1.EndpointSlice{
			badSlice("web-port", func(es *discoveryv1.EndpointSlice) { *es.Ports[0].Port = 99999 }),
		}}, Options{},
			[]Problem{{Warning, ObjectRef{"EndpointSlice", "default", "web-port"}, "ports[0].port", InvalidPort, ""}}},
		{"endpoint address that is no IP", Inputs{Ingresses: []*networkingv1.Ingress{web(nil)}, EndpointSlices: []*discoveryv1.EndpointSlice{
			badSlice("web-bad", func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses[0] = "not-an-ip" }),
		}}, Options{},
			[]Problem{{Warning, ObjectRef{"EndpointSlice", "default", "web-bad"}, "endpoints[0].addresses[0]", InvalidAddress, ""}}},
		{"endpoint address of the other family", Inputs{Ingresses: []*networkingv1.Ingress{web(nil)}, EndpointSlices: []*discoveryv1.EndpointSlice{
			badSlice("web-v6", func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses[0] = "fd00::1" }),
		}}, Options{},
			[]Problem{{Warning, ObjectRef{"EndpointSlice", "default", "web-v6"}, "endpoints[0].addresses[0]", InvalidAddress, ""}}},
		{"invalid annotation value", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"balance", "fastest"))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/balance"]`, InvalidAnnotation, ""}}},
		{"unknown annotation", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"balanse", "leastconn"))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/balanse"]`, UnknownAnnotation, ""}}},
		{"ingress-nginx snippet", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"configuration-snippet", "more_set_headers x;"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Warning, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]`, UnsupportedAnnotation, ""}}},
		{"ingress-nginx annotations without compatibility", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"limit-rps", "5"))}}, Options{},
			[]Problem{{Notice, ingressRef, "metadata.annotations", UnsupportedAnnotation, ""}}},
		{"ours wins over ingress-nginx's", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"limit-rps", "5", AnnotationPrefix+"rate-limit-rps", "7"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Notice, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/limit-rps"]`, AnnotationOverridden, ""}}},
		{"two ingress-nginx names for one annotation", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"allowlist-source-range", "10.0.0.0/8", NginxAnnotationPrefix+"whitelist-source-range", "192.168.0.0/16"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Notice, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/whitelist-source-range"]`, AnnotationOverridden, ""}}},
		{"missing auth Secret named by ingress-nginx's annotation", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"auth-type", "basic", NginxAnnotationPrefix+"auth-secret", "users"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Warning, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/auth-secret"]`, AnnotationSecretNotFound, ""}}},
		{"missing auth Secret", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"auth-basic-secret", "users"))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/auth-basic-secret"]`, AnnotationSecretNotFound, ""}}},
		{"auth Secret without htpasswd", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"auth-basic-secret", "opaque"))}, Secrets: []*corev1.Secret{opaque}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/auth-basic-secret"]`, AnnotationSecretInvalid, ""}}},
		{"auth Secret with an Apache MD5 user", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"auth-basic-secret", "htpasswd"))},
			Secrets: []*corev1.Secret{htpasswdSecret("alice:$apr1$saltsalt$" + strings.Repeat("A", 22))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/auth-basic-secret"]`, AuthHashUnsupported, ""}}},
		{"auth Secret with a bcrypt cost 31 user", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"auth-basic-secret", "htpasswd"))},
			Secrets: []*corev1.Secret{htpasswdSecret("alice:$2y$31$" + strings.Repeat("A", 53))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/auth-basic-secret"]`, AuthHashTooCostly, ""}}},
		{"auth Secret over the parse budget", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"auth-basic-secret", "htpasswd"))},
			Secrets: []*corev1.Secret{htpasswdSecret(manyUsers(200, "$2y$05$"+strings.Repeat("A", 53)))}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/auth-basic-secret"]`, AuthSecretTooCostly, ""}}},
		{"canary without a primary", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"canary-weight", "10"))}}, Options{},
			[]Problem{{Warning, ingressRef, "spec.rules[0].http.paths[0]", CanaryWithoutPrimary, ""}}},
		{"second canary on a route", Inputs{Ingresses: []*networkingv1.Ingress{
			ingress("default", "primary", -1, "a.example", pathSpec{"Prefix", "/", "web", 80}),
			func() *networkingv1.Ingress {
				i := ingress("default", "canary", 1, "a.example", pathSpec{"Prefix", "/", "web", 80})
				annotate(AnnotationPrefix+"canary-weight", "10")(i)
				return i
			}(),
			web(annotate(AnnotationPrefix+"canary-by-header", "X-Canary")),
		}}, Options{},
			[]Problem{{Warning, ObjectRef{"Ingress", "default", "canary"}, "spec.rules[0].http.paths[0]", Conflict, ""}}},
		{"canary of a route another namespace serves", Inputs{Ingresses: []*networkingv1.Ingress{
			web(nil),
			func() *networkingv1.Ingress {
				i := ingress("tenant", "takeover", 1, "a.example", pathSpec{"Prefix", "/", "web", 80})
				annotate(AnnotationPrefix+"canary-weight", "100")(i)
				return i
			}(),
		}, Services: []*corev1.Service{service("tenant", "web", corev1.ServicePort{Name: "http", Port: 80})}}, Options{},
			[]Problem{{Warning, ObjectRef{"Ingress", "tenant", "takeover"}, "spec.rules[0].http.paths[0]", CanaryOtherNamespace, ""}}},
		{"route annotation on a canary", Inputs{Ingresses: []*networkingv1.Ingress{
			ingress("default", "primary", -1, "a.example", pathSpec{"Prefix", "/", "web", 80}),
			web(annotate(AnnotationPrefix+"canary-by-header", "X-Canary", AnnotationPrefix+"denylist-source-range", "10.0.0.0/8")),
		}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/denylist-source-range"]`, CanaryAnnotationIgnored, ""}}},
		{"ingress-nginx protection not implemented", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"auth-snippet", "return 200;"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Warning, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/auth-snippet"]`, UnsupportedProtection, ""}}},
		{"auth-url outside the namespace", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(NginxAnnotationPrefix+"auth-url", "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth"))}}, Options{AnnotationsCompat: CompatNginx},
			[]Problem{{Warning, ingressRef, `metadata.annotations["nginx.ingress.kubernetes.io/auth-url"]`, InvalidAnnotation, ""}}},
		{"backend annotations of an older Ingress", Inputs{Ingresses: []*networkingv1.Ingress{
			web(annotate(AnnotationPrefix+"balance", "leastconn")),
			func() *networkingv1.Ingress {
				i := ingress("default", "younger", 1, "b.example", pathSpec{"Prefix", "/", "web", 80})
				annotate(AnnotationPrefix+"balance", "source")(i)
				return i
			}(),
		}}, Options{},
			[]Problem{{Warning, younger, `metadata.annotations["haproxy-sidecar.io/balance"]`, Conflict, ""}}},
		{"server-alias of another namespace's younger host", Inputs{Ingresses: []*networkingv1.Ingress{
			web(annotate(AnnotationPrefix+"server-alias", "b.example")), ingress("other", "younger", 1, "b.example", pathSpec{"Prefix", "/b", "web", 80}),
		}}, Options{},
			[]Problem{{Warning, ingressRef, `metadata.annotations["haproxy-sidecar.io/server-alias"]`, AliasHostServed, ""},
				{Warning, ObjectRef{"Ingress", "other", "younger"}, path0 + ".backend.service.name", BackendNotFound, ""}}},
		{"default-backend on a host shared with another namespace", Inputs{Ingresses: []*networkingv1.Ingress{
			web(annotate(AnnotationPrefix+"default-backend", "web:80")), ingress("other", "younger", 1, "a.example", pathSpec{"Prefix", "/b", "web", 80}),
		}}, Options{},
			[]Problem{{Notice, ingressRef, `metadata.annotations["haproxy-sidecar.io/default-backend"]`, DefaultBackendSharedHost, ""},
				{Warning, ObjectRef{"Ingress", "other", "younger"}, path0 + ".backend.service.name", BackendNotFound, ""}}},
		{"a path other than / with ssl-passthrough", Inputs{Ingresses: []*networkingv1.Ingress{web(func(i *networkingv1.Ingress) {
			withPath(pathSpec{"Prefix", "/api", "web", 80})(i)
			annotate(AnnotationPrefix+"ssl-passthrough", "true")(i)
		})}}, Options{},
			[]Problem{{Warning, ingressRef, path0, PassthroughUnsupported, ""}}},
		{"custom-http-errors without default-backend", Inputs{Ingresses: []*networkingv1.Ingress{web(annotate(AnnotationPrefix+"custom-http-errors", "404"))}}, Options{},
			[]Problem{{Notice, ingressRef, `metadata.annotations["haproxy-sidecar.io/custom-http-errors"]`, ErrorPagesUnavailable, ""}}},
		{"default-backend-service missing", Inputs{}, Options{DefaultService: &ServiceRef{Namespace: "ops", Name: "errors"}},
			[]Problem{{Warning, ObjectRef{"Service", "ops", "errors"}, "", DefaultServiceUnusable, ""}}},
		{"settings named without namespace", Inputs{}, Options{SettingsConfigMap: "settings"},
			[]Problem{{Warning, ObjectRef{Kind: "ConfigMap"}, "", SettingsRefInvalid, ""}}},
		{"settings missing", Inputs{}, Options{SettingsConfigMap: "default/settings"},
			[]Problem{{Notice, settingsRef, "", SettingsNotFound, ""}}},
		{"unknown setting", Inputs{ConfigMaps: []*corev1.ConfigMap{settings(map[string]string{"nope": "1"}, nil)}}, Options{SettingsConfigMap: "default/settings"},
			[]Problem{{Warning, settingsRef, "data[nope]", SettingsUnknownKey, ""}}},
		{"invalid setting", Inputs{ConfigMaps: []*corev1.ConfigMap{settings(map[string]string{"maxconn": "many"}, nil)}}, Options{SettingsConfigMap: "default/settings"},
			[]Problem{{Warning, settingsRef, "data[maxconn]", SettingsInvalidValue, ""}}},
		{"setting in binaryData", Inputs{ConfigMaps: []*corev1.ConfigMap{settings(nil, map[string]string{"maxconn": "5"})}}, Options{SettingsConfigMap: "default/settings"},
			[]Problem{{Warning, settingsRef, "binaryData[maxconn]", SettingsBinaryData, ""}}},
		{"http-port and https-port the same", Inputs{ConfigMaps: []*corev1.ConfigMap{settings(map[string]string{"http-port": "8080", "https-port": "8080"}, nil)}}, Options{SettingsConfigMap: "default/settings"},
			[]Problem{{Warning, settingsRef, "data[https-port]", SettingsPortConflict, ""}}},
		{"TCP services named without namespace", Inputs{}, Options{TCPServicesConfigMap: "tcp"},
			[]Problem{{Warning, ObjectRef{Kind: "ConfigMap"}, "", TCPServicesRefInvalid, ""}}},
		{"TCP services missing", Inputs{}, Options{TCPServicesConfigMap: "default/tcp"},
			[]Problem{{Notice, tcpRef, "", TCPServicesNotFound, ""}}},
		{"TCP service with a bad key", Inputs{ConfigMaps: []*corev1.ConfigMap{tcpServices(map[string]string{"x": "default/web:80", "9000": "default/web:80"})}}, Options{TCPServicesConfigMap: "default/tcp"},
			[]Problem{{Warning, tcpRef, "data[x]", TCPServiceInvalid, ""}}},
		{"TCP service on the HTTP port", Inputs{ConfigMaps: []*corev1.ConfigMap{tcpServices(map[string]string{"80": "default/web:80", "9000": "default/web:http"})}},
			Options{TCPServicesConfigMap: "default/tcp", ReservedPorts: []ReservedPort{{Name: ListenerHTTP, Port: 80}}},
			[]Problem{{Warning, tcpRef, "data[80]", TCPServicePortConflict, ""}}},
		{"TCP service of a missing Service", Inputs{ConfigMaps: []*corev1.ConfigMap{tcpServices(map[string]string{"9000": "default/nope:80", "9001": "default/web:80"})}}, Options{TCPServicesConfigMap: "default/tcp"},
			[]Problem{{Warning, tcpRef, "data[9000]", TCPServiceUnusable, ""}}},
	}
	covered := map[Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.IngressClasses = append(tt.in.IngressClasses, ourClass(false))
			tt.in.Services = append(tt.in.Services, services...)
			tt.in.EndpointSlices = append(tt.in.EndpointSlices, webSlice, dnsSlice)
			m := BuildModel(tt.in, tt.opts)
			var got []Problem
			for _, p := range m.Problems {
				if p.Message == "" {
					t.Errorf("problem without a message: %+v", p)
				}
				p.Message = ""
				got = append(got, p)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems\n%+v\nwant\n%+v\n(messages: %v)", got, tt.want, m.Problems)
			}
		})
		for _, p := range tt.want {
			covered[p.Reason] = true
		}
	}
	// Reasons given outside render: by manifest and controller.
	outside := []Reason{FileNotFound, FileUnreadable, FileInvalid, UnusedKind, DuplicateObject, NothingServed}
	for _, r := range Reasons() {
		if !covered[r] && !slices.Contains(outside, r) {
			t.Errorf("no case gives reason %s", r)
		}
	}
}

// tcpRef is the TCP services ConfigMap tcpServices makes.
var tcpRef = ObjectRef{"ConfigMap", "default", "tcp"}

// tcpServices is the TCP services ConfigMap default/tcp.
func tcpServices(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tcp"}, Data: data}
}

// annotate sets annotations (key, value, key, value...).
func annotate(kv ...string) func(*networkingv1.Ingress) {
	return func(i *networkingv1.Ingress) {
		if i.Annotations == nil {
			i.Annotations = map[string]string{}
		}
		for j := 0; j+1 < len(kv); j += 2 {
			i.Annotations[kv[j]] = kv[j+1]
		}
	}
}
