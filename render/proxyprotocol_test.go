package render_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// proxyV1 is a PROXY protocol version 1 header (text), TCP4 or TCP6 by
// the addresses.
func proxyV1(src, dst netip.AddrPort) []byte {
	fam := "TCP4"
	if src.Addr().Is6() {
		fam = "TCP6"
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", fam, src.Addr(), dst.Addr(), src.Port(), dst.Port())
}

// proxyV2 is a PROXY protocol version 2 header (binary): the signature,
// version 2 with the PROXY command, TCP over IPv4 or IPv6, and the address
// block without TLVs.
func proxyV2(src, dst netip.AddrPort) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21) // version 2, PROXY
	fam, addrLen := byte(0x11), 12
	if src.Addr().Is6() {
		fam, addrLen = 0x21, 36
	}
	b = append(b, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(addrLen))
	b = append(b, src.Addr().AsSlice()...)
	b = append(b, dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// ppEcho is an endpoint that answers with the X-Forwarded-For it was sent
// and remembers every one.
type ppEcho struct {
	port int
	mu   sync.Mutex
	seen []string
}

func startPPEcho(t testing.TB) *ppEcho {
	t.Helper()
	e := &ppEcho{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		xff := strings.Join(r.Header.Values("X-Forwarded-For"), ", ")
		e.mu.Lock()
		e.seen = append(e.seen, xff)
		e.mu.Unlock()
		w.Header().Set("X-Seen-XFF", xff)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.port = ln.Addr().(*net.TCPAddr).Port
	return e
}

// sawAddress tells whether any X-Forwarded-For the endpoint was sent
// holds addr.
func (e *ppEcho) sawAddress(addr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.seen, func(xff string) bool { return strings.Contains(xff, addr) })
}

// ppReq is one request over a connection of its own.
type ppReq struct {
	from   string // the address the client's socket is bound to
	header []byte // sent first on the connection (before TLS); nil for none
	https  bool
	host   string
	xff    string // the client's own X-Forwarded-For; "" for none
}

func (r ppReq) String() string {
	scheme := "http"
	if r.https {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s from %s with header %q", scheme, r.host, r.from, r.header)
}

// ppAnswer is HAProxy's answer: a status and the X-Forwarded-For the
// endpoint saw, or the error of a connection closed without one.
type ppAnswer struct {
	status int
	xff    string
	err    error
}

// do sends r to HAProxy on loopback: the raw connection from r.from, the
// PROXY header written on it as is, then TLS and HTTP by Go's client.
func ppDo(r ppReq, httpPort, httpsPort int) ppAnswer {
	scheme, port := "http", httpPort
	if r.https {
		scheme, port = "https", httpsPort
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.from)}}
			c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return nil, err
			}
			if _, err := c.Write(r.header); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		TLSClientConfig:   &tls.Config{ServerName: r.host, InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", scheme+"://"+r.host+"/", nil)
	if err != nil {
		return ppAnswer{err: err}
	}
	if r.xff != "" {
		req.Header.Set("X-Forwarded-For", r.xff)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return ppAnswer{err: err}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return ppAnswer{status: resp.StatusCode, xff: resp.Header.Get("X-Seen-XFF")}
}

// proxyProtocolInputs are Ingresses on one echo endpoint: pp.test plain,
// and one host per annotation that reads the client's address.
func proxyProtocolInputs(echoPort int, settings map[string]string) render.Inputs {
	cls, pt := "haproxy", networkingv1.PathTypePrefix
	port, pname, ready := int32(echoPort), "http", true
	in := render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lb"}, Data: settings}},
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		}},
	}
	for host, ann := range map[string]map[string]string{
		"pp.test":    nil,
		"allow.test": {"allowlist-source-range": "203.0.113.0/24"},
		"loop.test":  {"allowlist-source-range": "127.0.0.0/8"},
		"xff.test":   {"allowlist-source-range": "198.51.100.0/24"},
		"rate.test":  {"rate-limit-rps": "2"},
	} {
		a := map[string]string{}
		for k, v := range ann {
			a[render.AnnotationPrefix+k] = v
		}
		name := strings.TrimSuffix(host, ".test")
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: a},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
	}
	return in
}

// renderProxyProtocol renders the inputs with the embedded template on
// fresh loopback ports, checks them with the config-parser oracle and
// writes them into a directory.
func renderProxyProtocol(t *testing.T, in render.Inputs) (dir string, httpPort, httpsPort int) {
	t.Helper()
	m := render.BuildModel(in, render.Options{SettingsConfigMap: "default/lb"})
	if len(m.Problems) > 0 {
		t.Fatalf("problems: %v", m.Problems)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort = freePort(t), freePort(t)
	rc := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)}
	out, err := haproxycfg.Render(m, rc)
	if err != nil {
		t.Fatal(err)
	}
	checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, haproxycfg.Config{HTTPBind: rc.HTTPBind, HTTPSBind: rc.HTTPSBind})
	dir = t.TempDir()
	writeFiles(t, dir, out)
	return dir, httpPort, httpsPort
}

// With use-proxy-protocol, the listed balancers (127.0.0.2 and
// 127.0.0.4/31 here, at the end of a list of 1000) must begin every
// connection with a PROXY v1 or v2 header, on HTTP and before TLS on
// HTTPS, and the header's address is the client's for the endpoints
// (X-Forwarded-For), source ranges, trusted-proxies, rate limits and the
// log. Any other address (127.0.0.3, 127.0.0.1) is refused, whatever
// header it sends. Without the setting, a PROXY header is not believed.
func TestProxyProtocol(t *testing.T) {
	echo := startPPEcho(t)
	const lie = "192.0.2.66" // what untrusted clients claim; never believed
	t.Run("set", func(t *testing.T) {
		dir, httpPort, httpsPort := renderProxyProtocol(t, proxyProtocolInputs(echo.port, map[string]string{
			"use-proxy-protocol": distinctAddresses(997, "127.0.0.2", "127.0.0.4/31"),
			// A proxy in front of the balancer (a CDN): its
			// X-Forwarded-For is believed when the PROXY header names it.
			"trusted-proxies": "203.0.113.0/24",
		}))
		for version, bin := range testenv.HAProxies(t) {
			t.Run("haproxy-"+version, func(t *testing.T) {
				logs := startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
				do := func(r ppReq) ppAnswer { return ppDo(r, httpPort, httpsPort) }
				dst := func(https bool, v6 bool) netip.AddrPort {
					a, p := netip.MustParseAddr("127.0.0.1"), httpPort
					if v6 {
						a = netip.MustParseAddr("::1")
					}
					if https {
						p = httpsPort
					}
					return netip.AddrPortFrom(a, uint16(p))
				}
				header := func(v int, src string, srcPort uint16, https bool) []byte {
					s := netip.AddrPortFrom(netip.MustParseAddr(src), srcPort)
					d := dst(https, s.Addr().Is6())
					if v == 1 {
						return proxyV1(s, d)
					}
					return proxyV2(s, d)
				}
				expect := func(r ppReq, status int, xff string) {
					t.Helper()
					a := do(r)
					if a.err != nil || a.status != status || (xff != "" && a.xff != xff) {
						t.Errorf("%s: status %d, X-Forwarded-For %q, error %v; want %d, %q", r, a.status, a.xff, a.err, status, xff)
					}
				}
				refused := func(r ppReq) {
					t.Helper()
					if a := do(r); a.err == nil {
						t.Errorf("%s: answered %d (X-Forwarded-For %q), want the connection refused", r, a.status, a.xff)
					}
				}

				// The header's address is the client's, v1 and v2, IPv4
				// and IPv6, HTTP and HTTPS, from either trusted peer.
				for _, v := range []int{1, 2} {
					for _, https := range []bool{false, true} {
						for i, client := range []string{"203.0.113.7", "2001:db8::7"} {
							from := []string{"127.0.0.2", "127.0.0.5"}[i]
							r := ppReq{from: from, host: "pp.test", https: https, header: header(v, client, 40000, https)}
							expect(r, 200, client)
						}
					}
				}
				// A balancer's own connections (its health checks): a v2
				// LOCAL header, or v1 UNKNOWN, keeps the connection's
				// address.
				local := []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00") // version 2, LOCAL, no address block
				for _, h := range [][]byte{local, []byte("PROXY UNKNOWN\r\n")} {
					for _, https := range []bool{false, true} {
						expect(ppReq{from: "127.0.0.2", host: "pp.test", https: https, header: h}, 200, "127.0.0.2")
					}
				}
				// The log line's client is the header's, port included.
				r := ppReq{from: "127.0.0.2", host: "pp.test", header: header(2, "203.0.113.44", 41234, false)}
				expect(r, 200, "203.0.113.44")
				if !waitFor(2*time.Second, func() bool { return strings.Contains(logs.String(), "203.0.113.44:41234 ") }) {
					t.Errorf("no log line for client 203.0.113.44:41234 of %s:\n%s", r, logs.String())
				}

				// Source ranges see the header's address, never the
				// balancer's own (127.0.0.2 is inside loop.test's range).
				for _, https := range []bool{false, true} {
					expect(ppReq{from: "127.0.0.2", host: "allow.test", https: https, header: header(1, "203.0.113.9", 40001, https)}, 200, "")
					expect(ppReq{from: "127.0.0.2", host: "allow.test", https: https, header: header(2, "192.0.2.9", 40002, https)}, 403, "")
					expect(ppReq{from: "127.0.0.2", host: "loop.test", https: https, header: header(2, "192.0.2.9", 40003, https)}, 403, "")
					expect(ppReq{from: "127.0.0.2", host: "loop.test", https: https, header: header(1, "127.0.0.9", 40004, https)}, 200, "")
				}

				// trusted-proxies is compared with the header's address:
				// a CDN in 203.0.113.0/24 behind the balancer has its
				// X-Forwarded-For believed; another client's is not.
				expect(ppReq{from: "127.0.0.2", host: "xff.test", xff: "198.51.100.9", header: header(1, "203.0.113.7", 40005, false)},
					200, "198.51.100.9, 203.0.113.7")
				expect(ppReq{from: "127.0.0.2", host: "xff.test", xff: "198.51.100.9", header: header(2, "192.0.2.10", 40006, false)}, 403, "")

				// Rate limits count per header address: two clients
				// behind the one balancer have two budgets.
				ok := map[string]int{}
				for range 4 {
					for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
						a := do(ppReq{from: "127.0.0.2", host: "rate.test", header: header(2, client, 40007, false)})
						switch {
						case a.err != nil:
							t.Errorf("rate limit: %v", a.err)
						case a.status == 200:
							ok[client]++
						case a.status != 429:
							t.Errorf("rate limit: status %d", a.status)
						}
					}
				}
				// At 2/s, 2 pass (3 when the requests straddle HAProxy's
				// one-second period).
				for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
					if ok[client] < 2 || ok[client] > 3 {
						t.Errorf("rate limit 2/s, 4 requests from %s behind the balancer: %d passed, want 2 (its own budget)", client, ok[client])
					}
				}

				// A trusted balancer without a header is refused: the
				// request (or the TLS handshake) is not a PROXY header.
				for _, https := range []bool{false, true} {
					refused(ppReq{from: "127.0.0.2", host: "pp.test", https: https})
				}
				// An untrusted client is refused, with or without a
				// header, and what its header claims is never used.
				for _, from := range []string{"127.0.0.3", "127.0.0.1"} {
					for _, https := range []bool{false, true} {
						refused(ppReq{from: from, host: "pp.test", https: https})
						for _, v := range []int{1, 2} {
							refused(ppReq{from: from, host: "pp.test", https: https, header: header(v, lie, 40008, https)})
							refused(ppReq{from: from, host: "allow.test", https: https, header: header(v, "203.0.113.10", 40009, https)})
						}
					}
				}
				if echo.sawAddress(lie) || echo.sawAddress("203.0.113.10") {
					t.Errorf("an untrusted client's claimed address reached the endpoint")
				}
				if l := logs.String(); strings.Contains(l, lie) || strings.Contains(l, "203.0.113.10") {
					t.Errorf("an untrusted client's claimed address is in the log:\n%s", l)
				}
			})
		}
	})

	// Without the setting, today's behaviour: the connection's address is
	// the client's, and a PROXY header is the start of a bad request.
	t.Run("unset", func(t *testing.T) {
		dir, httpPort, httpsPort := renderProxyProtocol(t, proxyProtocolInputs(echo.port, map[string]string{}))
		for version, bin := range testenv.HAProxies(t) {
			t.Run("haproxy-"+version, func(t *testing.T) {
				startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
				for _, https := range []bool{false, true} {
					for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
						r := ppReq{from: from, host: "pp.test", https: https}
						if a := ppDo(r, httpPort, httpsPort); a.err != nil || a.status != 200 || a.xff != from {
							t.Errorf("%s: status %d, X-Forwarded-For %q, error %v; want 200, %q", r, a.status, a.xff, a.err, from)
						}
					}
					d := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(httpPort))
					s := netip.MustParseAddrPort(lie + ":40010")
					for _, h := range [][]byte{proxyV1(s, d), proxyV2(s, d)} {
						r := ppReq{from: "127.0.0.2", host: "pp.test", https: https, header: h}
						if a := ppDo(r, httpPort, httpsPort); a.err == nil && a.status != 400 {
							t.Errorf("%s: status %d, want 400 or no answer", r, a.status)
						}
					}
				}
				if echo.sawAddress(lie) {
					t.Errorf("a PROXY header was believed without use-proxy-protocol")
				}
			})
		}
	})
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
