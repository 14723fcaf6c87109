package render_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The addresses the test's DNS server gives the external name: two echo
// servers on the same port, on two loopback addresses.
var (
	extAddrA = netip.MustParseAddr("127.0.0.2")
	extAddrB = netip.MustParseAddr("127.0.0.3")
)

const (
	extName     = "partner.ext-test.example.com"
	extLateName = "late.ext-test.example.com"
	extV6Name   = "v6.ext-test.example.com"
	extHost     = "ext.example"
)

// TestExternalNameThroughResolvers runs an ExternalName backend through
// HAProxy 2.6 and 3.0 against a DNS server the test runs on loopback, set
// as the resolvers' nameserver by the dns-nameservers setting: requests
// reach echo server A; when the DNS answer becomes B, traffic moves to B
// while HAProxy keeps running the same configuration (no reload: the
// process is started once), and no request of a steady load fails; a name
// that does not resolve answers 503 until it does. Explain names the
// resolved name and predicts the Service that answers.
func TestExternalNameThroughResolvers(t *testing.T) {
	dns := testenv.StartDNSServer(t, "127.0.0.1:0")
	port := startExtEchoPair(t)
	v6Port := startExtEcho(t, "[::1]:0", "v6")
	httpPort, httpsPort := freePort(t), freePort(t)
	m, out, problems := renderInputs(t, externalNameInputs(dns.Addr, port, v6Port), haproxycfg.Config{
		HTTPBind:  "127.0.0.1:" + strconv.Itoa(httpPort),
		HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort),
	}, nil)
	for _, p := range problems {
		t.Errorf("unexpected problem: %s", p.Report())
	}
	cfg := string(out.Get(haproxycfg.ConfigFile))
	for _, want := range []string{
		"nameserver ns1 " + dns.Addr.String(),
		"server s1 " + extName + ":" + strconv.Itoa(port) + " id 1 resolvers sidecar_dns init-addr none",
		"server s1 " + extLateName + ":" + strconv.Itoa(port) + " id 1 resolvers sidecar_dns init-addr none",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if strings.Contains(cfg, "parse-resolv-conf") {
		t.Errorf("haproxy.cfg reads /etc/resolv.conf although dns-nameservers is set")
	}
	// Explain: the Service that answers, and the name HAProxy resolves.
	for path, name := range map[string]string{"/": extName, "/late": extLateName} {
		r := request{host: extHost, path: path}
		svc := "partner"
		if path == "/late" {
			svc = "late"
		}
		if got, _ := explained(t, m, out, r); got != "svc:shop/"+svc {
			t.Errorf("explain %s: predicts %s, want svc:shop/%s", r, got, svc)
		}
		text := m.Explain(r.render()).String()
		if !strings.Contains(text, "resolves "+name) || !strings.Contains(text, "503 while the name does not resolve") {
			t.Errorf("explain %s does not name %s:\n%s", r, name, text)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)

	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			dns.Set(extName, extAddrA)
			dns.Set(extLateName)
			dns.Set(extV6Name, netip.MustParseAddr("::1"))
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newExtClient(httpPort)

			// The first answer of the resolvers: A.
			start := time.Now()
			waitExt(t, c, "/", "a", 20*time.Second, nil)
			t.Logf("first answer from A %v after start", time.Since(start).Round(time.Millisecond))
			// A name with only an IPv6 address is served over IPv6
			// (resolve-prefer ipv4 prefers, it does not restrict).
			waitExt(t, c, "/v6", "v6", 10*time.Second, nil)
			// A name that does not resolve: 503, again and again.
			for range 5 {
				if got := c.get(t, "/late"); got != "503" {
					t.Fatalf("/late before its name resolves: %s, want 503", got)
				}
				time.Sleep(100 * time.Millisecond)
			}

			// Load on / while the answer moves from A to B.
			var stop atomic.Bool
			var failures, total atomic.Int64
			var firstFailure atomic.Value
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lc := newExtClient(httpPort)
					for !stop.Load() {
						got := lc.get(t, "/")
						total.Add(1)
						if got != "a" && got != "b" {
							failures.Add(1)
							firstFailure.CompareAndSwap(nil, got)
						}
					}
				}()
			}
			time.Sleep(500 * time.Millisecond)
			dns.Set(extName, extAddrB)
			moved := time.Now()
			waitExt(t, c, "/", "b", 30*time.Second, func(got string) bool { return got == "a" })
			t.Logf("traffic on B %v after the DNS answer changed", time.Since(moved).Round(time.Millisecond))
			time.Sleep(time.Second) // B only, still under load
			for range 20 {
				if got := c.get(t, "/"); got != "b" {
					t.Errorf("after the move: %s, want b", got)
				}
			}
			stop.Store(true)
			wg.Wait()
			t.Logf("%d requests under load, %d failed", total.Load(), failures.Load())
			if failures.Load() > 0 || total.Load() < 100 {
				t.Errorf("%d of %d requests failed while the answer changed (first: %v)", failures.Load(), total.Load(), firstFailure.Load())
			}

			// The late name resolves: 503 until it does, then the server.
			dns.Set(extLateName, extAddrA)
			resolved := time.Now()
			waitExt(t, c, "/late", "a", 30*time.Second, func(got string) bool { return got == "503" })
			t.Logf("/late served %v after its name began to resolve", time.Since(resolved).Round(time.Millisecond))
		})
	}
	if dns.Queries.Load() == 0 {
		t.Errorf("HAProxy never asked the test's DNS server")
	}
}

// externalNameInputs: namespace shop's Ingress for ext.example, "/" to
// ExternalName Service partner by port number (the Service lists no
// port), "/late" to Service late by port name; the settings ConfigMap
// points the resolvers at the test's DNS server.
func externalNameInputs(nameserver netip.AddrPort, port, v6Port int) render.Inputs {
	prefix := networkingv1.PathTypePrefix
	path := func(p, svc string, port networkingv1.ServiceBackendPort) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: p, PathType: &prefix, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: svc, Port: port}}}
	}
	ext := func(name, host string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: host, Ports: ports}}
	}
	cls := "haproxy"
	return render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "haproxy-sidecar"},
			Data: map[string]string{"dns-nameservers": nameserver.String()}}},
		Services: []*corev1.Service{
			ext("partner", extName+"."),
			ext("late", extLateName, corev1.ServicePort{Name: "http", Port: int32(port)}),
			ext("v6", extV6Name),
		},
		Ingresses: []*networkingv1.Ingress{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: extHost,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					path("/", "partner", networkingv1.ServiceBackendPort{Number: int32(port)}),
					path("/late", "late", networkingv1.ServiceBackendPort{Name: "http"}),
					path("/v6", "v6", networkingv1.ServiceBackendPort{Number: int32(v6Port)}),
				}}}}}},
		}},
	}
}

// startExtEchoPair starts echo servers A (extAddrA) and B (extAddrB) on
// one port, each answering its Service's name ("svc:shop/<service>" for
// the Host's path, as explain predicts) and which server it is in
// X-Echo-Server.
func startExtEchoPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		la, err := net.Listen("tcp", netip.AddrPortFrom(extAddrA, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := la.Addr().(*net.TCPAddr).Port
		lb, err := net.Listen("tcp", netip.AddrPortFrom(extAddrB, uint16(port)).String())
		if err != nil {
			la.Close()
			continue // taken on B's address: another port
		}
		for ln, name := range map[net.Listener]string{la: "a", lb: "b"} {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				serveExtEcho(w, r, name)
			})}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both echo addresses")
	return 0
}

// startExtEcho starts one more echo server, name, on addr; it returns
// its port.
func startExtEcho(t *testing.T, addr, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveExtEcho(w, r, name) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// serveExtEcho answers as echo server name: the Service of the path
// ("svc:shop/<service>"), and the server in X-Echo-Server.
func serveExtEcho(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("X-Echo-Server", name)
	io.WriteString(w, "svc:shop/"+extService(r.URL.Path))
}

// extService is the Service the test routes path to.
func extService(path string) string {
	switch {
	case strings.HasPrefix(path, "/late"):
		return "late"
	case strings.HasPrefix(path, "/v6"):
		return "v6"
	}
	return "partner"
}

// extClient sends requests for extHost to HAProxy over kept-alive
// connections.
type extClient struct {
	c    *http.Client
	port int
}

func newExtClient(port int) *extClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	}, MaxIdleConnsPerHost: 4}
	return &extClient{c: &http.Client{Transport: tr, Timeout: 5 * time.Second}, port: port}
}

// get returns "a" or "b" for an answer of echo server A or B (with the
// body explain predicts), the status code for an answer of HAProxy
// itself, or the error.
func (c *extClient) get(t *testing.T, path string) string {
	resp, err := c.c.Get("http://" + extHost + path)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return strconv.Itoa(resp.StatusCode)
	}
	if string(body) != "svc:shop/"+extService(path) {
		return fmt.Sprintf("200 with body %q", body)
	}
	return resp.Header.Get("X-Echo-Server")
}

// waitExt waits until path is answered by want; before that, every
// answer must be one before allows (nil: anything).
func waitExt(t *testing.T, c *extClient, path, want string, within time.Duration, before func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := c.get(t, path)
		if got == want {
			return
		}
		if before != nil && !before(got) {
			t.Fatalf("%s: %s while waiting for %s", path, got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v, want %s", path, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExternalNameValidation: the names an ExternalName Service may give
// and those it may not, each refused with InvalidExternalName on the
// Service's spec.externalName and its routes answering 503.
func TestExternalNameValidation(t *testing.T) {
	accepted := map[string]string{
		"api.example.com":                        "api.example.com",
		"api.example.com.":                       "api.example.com",
		"xn--bcher-kva.example.com":              "xn--bcher-kva.example.com",
		"a-b.c-d.example.org":                    "a-b.c-d.example.org",
		"cart.shop.svc.cluster.local":            "cart.shop.svc.cluster.local", // the Service's own namespace
		"cart.shop.svc":                          "cart.shop.svc",
		"db.office.corp":                         "db.office.corp", // three labels: no cluster short form
		"example.co.uk":                          "example.co.uk",
		strings.Repeat("a", 63) + ".example.com": strings.Repeat("a", 63) + ".example.com",
	}
	refused := []string{
		"", ".", "localhost", "db.localhost", "x", "web", "web.billing", "db.corp",
		"web.billing.svc", "web.billing.svc.cluster.local", "web.billing.svc.cluster.local.",
		"10-0-0-1.billing.pod.cluster.local", "kubernetes.default.svc.cluster.local",
		"x.cluster.local", "cluster.local",
		"10.0.0.1", "127.0.0.1", "169.254.169.254", "127.1", "2130706433", "0x7f.1", "1.2.3.4.", "::1", "[::1]", "fe80::1%eth0",
		"_http._tcp.example.com", "ipv4@example.com", "unix@/tmp/x", "fd@3", "abns@x", "sockpair@3",
		"example.com:80", "example.com resolvers x", "Example.com", "ex\u0430mple.com",
		"-a.example.com", "a-.example.com", "a..example.com",
		strings.Repeat("a", 64) + ".example.com",
		strings.Repeat("a.", 126) + "com", // 253 characters + ... = 255
	}
	for _, v := range hostileValues() {
		refused = append(refused, v)
	}
	for _, s := range hostileSuffixes() {
		refused = append(refused, "api.example.com"+s)
	}
	svcRef := func(name string) render.ObjectRef {
		return render.ObjectRef{Kind: "Service", Namespace: "shop", Name: name}
	}
	var in render.Inputs
	cls, prefix := "haproxy", networkingv1.PathTypePrefix
	in.IngressClasses = []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: "shop.example",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}}}}
	in.Ingresses = []*networkingv1.Ingress{ing}
	want := map[string]string{} // Service name -> accepted name, "" refused
	add := func(i int, v, accept string) {
		name := "ext-" + strconv.Itoa(i)
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: v}})
		http := ing.Spec.Rules[0].HTTP
		http.Paths = append(http.Paths, networkingv1.HTTPIngressPath{Path: "/" + name, PathType: &prefix,
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 443}}}})
		want[name] = accept
	}
	i := 0
	for v, a := range accepted {
		add(i, v, a)
		i++
	}
	for _, v := range refused {
		add(i, v, "")
		i++
	}
	m := render.BuildModel(in, render.Options{})
	problems := map[render.ObjectRef][]render.Problem{}
	for _, p := range m.Problems {
		problems[p.ObjectRef] = append(problems[p.ObjectRef], p)
	}
	for name, accept := range want {
		v := in.Services[slices.IndexFunc(in.Services, func(s *corev1.Service) bool { return s.Name == name })].Spec.ExternalName
		e := m.Explain(render.Request{Host: "shop.example", Path: "/" + name})
		be := e.BackendInfo
		ps := problems[svcRef(name)]
		if accept != "" {
			if len(ps) > 0 || be == nil || be.ExternalName != accept || be.ExternalPort != 443 || e.Answer != render.AnswerServers {
				t.Errorf("%q: backend %+v, problems %v; want %q accepted", v, be, ps, accept)
			}
			continue
		}
		if len(ps) != 1 || ps[0].Field != "spec.externalName" || ps[0].Reason != render.InvalidExternalName || ps[0].Severity != render.Warning {
			t.Errorf("%q: problems %v, want one InvalidExternalName warning on spec.externalName", hShort(v), ps)
		}
		if e.Answer != render.AnswerUnavailable || be == nil || be.Resolves() || be.Slots != 0 {
			t.Errorf("%q: answer %v, backend %+v; want 503 from a backend without a server", hShort(v), e.Answer, be)
		}
	}

	// What reaches haproxy.cfg: accepted names only, outside any quote
	// nothing hostile, and both versions accept it.
	_, out, _ := renderInputs(t, in, haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443"}, nil)
	cfg := out.Get(haproxycfg.ConfigFile)
	checkHostileText(t, haproxycfg.ConfigFile, cfg, true)
	if n := strings.Count(string(cfg), " resolvers "+render.ResolversName+" "); n != len(accepted) {
		t.Errorf("%d servers resolve a name, want %d", n, len(accepted))
	}
	if !strings.Contains(string(cfg), "    parse-resolv-conf\n") {
		t.Errorf("without dns-nameservers the resolvers do not read /etc/resolv.conf")
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		if err := reload.Check(context.Background(), bin, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Errorf("haproxy %s -c: %v", version, err)
		}
	}
}

// TestExternalNamePorts: the Ingress spec's port rules on an ExternalName
// Service. A number is connected to as it is, listed or not; a name must
// be listed and its port is connected to; a UDP port is refused; the
// default-backend annotation without a port takes the first listed.
func TestExternalNamePorts(t *testing.T) {
	cls, prefix := "haproxy", networkingv1.PathTypePrefix
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "partner"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "api.example.com", Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(9090)},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		}}}
	paths := map[string]networkingv1.ServiceBackendPort{
		"/number":        {Number: 443},
		"/listed-number": {Number: 8080},
		"/name":          {Name: "http"},
		"/missing-name":  {Name: "https"},
		"/udp":           {Name: "dns"},
	}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: "shop.example",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}}}}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, networkingv1.HTTPIngressPath{Path: p, PathType: &prefix,
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "partner", Port: paths[p]}}})
	}
	m := render.BuildModel(render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		Services: []*corev1.Service{svc}, Ingresses: []*networkingv1.Ingress{ing}}, render.Options{})
	for path, want := range map[string]int32{"/number": 443, "/listed-number": 8080, "/name": 8080, "/missing-name": 0, "/udp": 0} {
		e := m.Explain(render.Request{Host: "shop.example", Path: path})
		switch {
		case want == 0 && e.Answer != render.AnswerUnavailable:
			t.Errorf("%s: answer %v, want 503", path, e.Answer)
		case want != 0 && (e.BackendInfo == nil || e.BackendInfo.ExternalPort != want || e.BackendInfo.ExternalName != "api.example.com"):
			t.Errorf("%s: backend %+v, want api.example.com:%d", path, e.BackendInfo, want)
		}
	}
	var reasons []string
	for _, p := range m.Problems {
		reasons = append(reasons, p.Field+" "+string(p.Reason))
	}
	slices.Sort(reasons)
	wantReasons := []string{
		"spec.rules[0].http.paths[1].backend.service.port BackendPortNotFound",
		"spec.rules[0].http.paths[4].backend.service.port UnsupportedBackend",
	}
	if !slices.Equal(reasons, wantReasons) {
		t.Errorf("problems %q, want %q", reasons, wantReasons)
	}
}

// TestExternalNameDefaultService: --default-backend-service may name an
// ExternalName Service, with the same rules as a route's.
func TestExternalNameDefaultService(t *testing.T) {
	for _, c := range []struct {
		host, port string
		want       string // the name resolved, "" refused
		wantPort   int32
	}{
		{"fallback.example.com", "8443", "fallback.example.com", 8443},
		{"fallback.example.com", "http", "fallback.example.com", 80},
		{"web.other.svc.cluster.local", "80", "", 0},
	} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "fallback"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: c.host,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		m := render.BuildModel(render.Inputs{Services: []*corev1.Service{svc}},
			render.Options{DefaultService: &render.ServiceRef{Namespace: "infra", Name: "fallback", Port: c.port}})
		e := m.Explain(render.Request{Host: "nowhere.example", Path: "/"})
		if c.want != "" {
			if e.Answer != render.AnswerServers || e.BackendInfo == nil || e.BackendInfo.ExternalName != c.want || e.BackendInfo.ExternalPort != c.wantPort || len(m.Problems) > 0 {
				t.Errorf("%s:%s: %v %+v %v", c.host, c.port, e.Answer, e.BackendInfo, m.Problems)
			}
			continue
		}
		if e.Answer != render.AnswerUnavailable || len(m.Problems) != 1 || m.Problems[0].Reason != render.InvalidExternalName || m.Problems[0].Field != "spec.externalName" {
			t.Errorf("%s:%s: %v %v", c.host, c.port, e.Answer, m.Problems)
		}
	}
}
