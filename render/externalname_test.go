package render_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	httpPort, httpsPort := freePort(t), freePort(t)
	m, out, problems := renderInputs(t, externalNameInputs(dns.Addr, port), haproxycfg.Config{
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
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newExtClient(httpPort)

			// The first answer of the resolvers: A.
			start := time.Now()
			waitExt(t, c, "/", "a", 20*time.Second, nil)
			t.Logf("first answer from A %v after start", time.Since(start).Round(time.Millisecond))
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
func externalNameInputs(nameserver netip.AddrPort, port int) render.Inputs {
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
		},
		Ingresses: []*networkingv1.Ingress{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: extHost,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					path("/", "partner", networkingv1.ServiceBackendPort{Number: int32(port)}),
					path("/late", "late", networkingv1.ServiceBackendPort{Name: "http"}),
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
				svc := "partner"
				if strings.HasPrefix(r.URL.Path, "/late") {
					svc = "late"
				}
				w.Header().Set("X-Echo-Server", name)
				io.WriteString(w, "svc:shop/"+svc)
			})}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both echo addresses")
	return 0
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
	svc := "partner"
	if strings.HasPrefix(path, "/late") {
		svc = "late"
	}
	if string(body) != "svc:shop/"+svc {
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
