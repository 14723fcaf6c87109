package render_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
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

// startTLSEndpoint is a passthrough endpoint: a Go TLS server with its
// own certificate for host, answering "tls-endpoint" and the address it
// saw the connection come from.
func startTLSEndpoint(t testing.TB, host string) int {
	t.Helper()
	crt, key := testenv.SelfSigned(t, host, "endpoint")
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Remote", r.RemoteAddr)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		io.WriteString(w, "tls-endpoint")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// passthroughInputs: pass.test passed through to a TLS endpoint (port
// tlsPort), term.test terminated with its own Secret and plain.test
// without one, both on the echo endpoint (echoPort).
func passthroughInputs(t testing.TB, tlsPort, echoPort int, settings map[string]string, nginx bool) render.Inputs {
	cls, pt := "haproxy", networkingv1.PathTypePrefix
	ready := true
	svc := func(name string, port int) (*corev1.Service, *discoveryv1.EndpointSlice) {
		p, pname := int32(port), "p"
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "p", Port: 443}}}},
			&discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &p}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			}
	}
	tlsSvc, tlsES := svc("secure", tlsPort)
	echoSvc, echoES := svc("web", echoPort)
	crt, key := testenv.SelfSigned(t, "term.test", "haproxy")
	in := render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		ConfigMaps:     []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lb"}, Data: settings}},
		Services:       []*corev1.Service{tlsSvc, echoSvc},
		EndpointSlices: []*discoveryv1.EndpointSlice{tlsES, echoES},
		Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "term"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}},
	}
	prefix := render.AnnotationPrefix
	if nginx {
		prefix = render.NginxAnnotationPrefix
	}
	for i, h := range []struct {
		host, svc string
		ann       map[string]string
		tls       bool
	}{
		{"pass.test", "secure", map[string]string{prefix + "ssl-passthrough": "true"}, false},
		{"term.test", "web", nil, true},
		{"plain.test", "web", nil, false},
	} {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: strings.TrimSuffix(h.host, ".test"), Annotations: h.ann,
			CreationTimestamp: metav1.NewTime(time.Unix(int64(1000+i), 0))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: h.host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: h.svc, Port: networkingv1.ServiceBackendPort{Number: 443}}}}}}}}}}}
		if h.tls {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{h.host}, SecretName: "term"}}
		}
		in.Ingresses = append(in.Ingresses, ing)
	}
	return in
}

// ptAnswer is what a client got over HTTPS: the certificate's subject,
// the status, the body and what the endpoint saw.
type ptAnswer struct {
	org, cn      string
	status       int
	body, xff    string
	remote       string
	err          error
	handshakeErr bool
}

// ptDo sends GET / to host over TLS (SNI sni) on the HTTPS port, from
// the address from, after header (a PROXY header, or nil).
func ptDo(port int, from, sni, host string, header []byte) ptAnswer {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return ptAnswer{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(header); err != nil {
		return ptAnswer{err: err}
	}
	tc := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		return ptAnswer{err: err, handshakeErr: true}
	}
	a := ptAnswer{}
	if c := tc.ConnectionState().PeerCertificates[0]; true {
		a.cn = c.Subject.CommonName
		if len(c.Subject.Organization) > 0 {
			a.org = c.Subject.Organization[0]
		}
	}
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		a.err = err
		return a
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.status, a.body = resp.StatusCode, string(b)
	a.xff, a.remote = resp.Header.Get("X-Seen-XFF"), resp.Header.Get("X-Seen-Remote")
	return a
}

func (a ptAnswer) String() string {
	return fmt.Sprintf("certificate %s/%s, status %d, body %q, X-Forwarded-For %q, error %v", a.org, a.cn, a.status, a.body, a.xff, a.err)
}

func renderPassthrough(t *testing.T, in render.Inputs) (dir string, httpPort, httpsPort int, out *haproxycfg.Output) {
	t.Helper()
	m := render.BuildModel(in, render.Options{SettingsConfigMap: "default/lb", AnnotationsCompat: render.CompatNginx})
	for _, p := range m.Problems {
		if p.Reason != render.NoEndpoints {
			t.Fatalf("problem: %v", p)
		}
	}
	if len(m.Passthrough) != 1 || m.Passthrough[0].Host != "pass.test" {
		t.Fatalf("passthrough routes %v, want pass.test's", m.Passthrough)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort = freePort(t), freePort(t)
	rc := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)}
	out, err = haproxycfg.Render(m, rc)
	if err != nil {
		t.Fatal(err)
	}
	checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, haproxycfg.Config{HTTPBind: rc.HTTPBind, HTTPSBind: rc.HTTPSBind})
	dir = t.TempDir()
	writeFiles(t, dir, out)
	return dir, httpPort, httpsPort, out
}

// TLS passthrough through HAProxy 2.6 and 3.0, under both annotation
// prefixes: a client naming pass.test gets the endpoint's own certificate
// and its answer (HAProxy never decrypts); term.test on the same port gets
// HAProxy's certificate, and the endpoint sees the client's own address
// (127.0.0.3, through the internal PROXY v2 hop); an unknown SNI name
// and none at all are terminated as before; plain HTTP to pass.test is
// sent to HTTPS; bytes that are not TLS are closed at once, as before.
func TestTLSPassthrough(t *testing.T) {
	tlsPort := startTLSEndpoint(t, "pass.test")
	echo := startPPEcho(t)
	for _, nginx := range []bool{false, true} {
		t.Run(fmt.Sprintf("nginx=%v", nginx), func(t *testing.T) {
			dir, httpPort, httpsPort, out := renderPassthrough(t, passthroughInputs(t, tlsPort, echo.port, map[string]string{}, nginx))
			// dump of the Ingress shows its SNI map row, its TLS hosts
			// row and its TCP backend.
			got := map[string]string{}
			for _, f := range out.Select(haproxycfg.Selector{Ingress: "default/pass"}) {
				got[f.Path] = string(f.Data())
			}
			if !strings.Contains(got[haproxycfg.PassthroughMapFile], "\npass.test default_secure_443:pass\n") ||
				!strings.Contains(got[haproxycfg.TLSHostsMapFile], "pass.test 1") || !strings.Contains(got[haproxycfg.ConfigFile], "mode tcp") {
				t.Errorf("dump of default/pass: %q", got)
			}
			for version, bin := range testenv.HAProxies(t) {
				t.Run("haproxy-"+version, func(t *testing.T) {
					logs := startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
					if a := ptDo(httpsPort, "127.0.0.3", "pass.test", "pass.test", nil); a.err != nil || a.org != "endpoint" || a.cn != "pass.test" || a.body != "tls-endpoint" {
						t.Errorf("pass.test: %s; want the endpoint's own certificate and answer", a)
					}
					// The SNI name decides, whatever its case.
					if a := ptDo(httpsPort, "127.0.0.3", "PASS.test", "pass.test", nil); a.err != nil || a.org != "endpoint" {
						t.Errorf("PASS.test: %s; want the endpoint's certificate", a)
					}
					if a := ptDo(httpsPort, "127.0.0.3", "term.test", "term.test", nil); a.err != nil || a.org != "haproxy" || a.cn != "term.test" || a.status != 200 || a.xff != "127.0.0.3" {
						t.Errorf("term.test: %s; want HAProxy's certificate for term.test, 200, X-Forwarded-For 127.0.0.3", a)
					}
					if a := ptDo(httpsPort, "127.0.0.4", "other.test", "plain.test", nil); a.err != nil || a.org != "haproxy-sidecar" || a.status != 200 || a.xff != "127.0.0.4" {
						t.Errorf("unknown SNI: %s; want the default certificate, 200, X-Forwarded-For 127.0.0.4", a)
					}
					if a := ptDo(httpsPort, "127.0.0.4", "", "plain.test", nil); a.err != nil || a.org != "haproxy-sidecar" || a.status != 200 {
						t.Errorf("no SNI: %s; want the default certificate, 200", a)
					}
					// A Host header naming pass.test on a terminated
					// connection is not passed through: HTTP routing
					// has no route for it.
					if a := ptDo(httpsPort, "127.0.0.4", "term.test", "pass.test", nil); a.err != nil || a.status != 404 {
						t.Errorf("Host pass.test over term.test's TLS: %s; want 404", a)
					}
					// Plain HTTP to a passed-through host goes to HTTPS.
					resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
						Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/x")
					if err == nil {
						resp.Body.Close()
					}
					req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/x?y", nil)
					req.Host = "pass.test"
					resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://pass.test/x?y" {
						t.Errorf("http://pass.test/x?y: %d %q, want 308 to https://pass.test/x?y", resp.StatusCode, resp.Header.Get("Location"))
					}
					// Not TLS: closed without an answer, at once (the
					// inspection does not wait for its delay).
					c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort))
					if err != nil {
						t.Fatal(err)
					}
					start := time.Now()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n")
					b, _ := io.ReadAll(c)
					c.Close()
					if took := time.Since(start); len(b) != 0 && !strings.HasPrefix(string(b), "\x15") || took > 2*time.Second {
						t.Errorf("plain HTTP on the HTTPS port: got %q after %v, want the connection closed within 2s", b, took)
					}
					if strings.Contains(logs.String(), "[WARNING]") {
						t.Errorf("HAProxy warns about the configuration:\n%s", logs.String())
					}
					// The log names the client of a terminated connection.
					if !waitFor(2*time.Second, func() bool { return strings.Contains(logs.String(), "127.0.0.3:") }) {
						t.Errorf("no log line with client 127.0.0.3:\n%s", logs.String())
					}
				})
			}
		})
	}
}

// With use-proxy-protocol, the HTTPS port's TCP frontend takes the PROXY
// header: a trusted balancer's clients reach both the passed-through host
// and the terminated one, whose endpoint sees the header's address; an
// untrusted peer is refused, its claimed address never seen.
func TestTLSPassthroughProxyProtocol(t *testing.T) {
	tlsPort := startTLSEndpoint(t, "pass.test")
	echo := startPPEcho(t)
	dir, httpPort, httpsPort, _ := renderPassthrough(t, passthroughInputs(t, tlsPort, echo.port, map[string]string{"use-proxy-protocol": "127.0.0.2"}, false))
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(httpsPort))
			for _, v := range []int{1, 2} {
				h := proxyV2(netip.MustParseAddrPort("203.0.113.7:40000"), dst)
				if v == 1 {
					h = proxyV1(netip.MustParseAddrPort("203.0.113.7:40000"), dst)
				}
				if a := ptDo(httpsPort, "127.0.0.2", "pass.test", "pass.test", h); a.err != nil || a.org != "endpoint" {
					t.Errorf("v%d pass.test: %s; want the endpoint's certificate", v, a)
				}
				if a := ptDo(httpsPort, "127.0.0.2", "term.test", "term.test", h); a.err != nil || a.org != "haproxy" || a.xff != "203.0.113.7" {
					t.Errorf("v%d term.test: %s; want HAProxy's certificate and X-Forwarded-For 203.0.113.7", v, a)
				}
				lie := proxyV2(netip.MustParseAddrPort("192.0.2.66:40000"), dst)
				for _, host := range []string{"pass.test", "term.test"} {
					if a := ptDo(httpsPort, "127.0.0.3", host, host, lie); a.err == nil {
						t.Errorf("untrusted peer, %s: %s; want refused", host, a)
					}
					if a := ptDo(httpsPort, "127.0.0.2", host, host, nil); a.err == nil {
						t.Errorf("trusted peer without a header, %s: %s; want refused", host, a)
					}
				}
			}
			if echo.sawAddress("192.0.2.66") {
				t.Errorf("an untrusted peer's claimed address reached the endpoint")
			}
		})
	}
}

// Reloads by HAProxy's master keep both paths working: the abstract
// socket of the terminating frontend is handed to the new worker, from a
// configuration with passthrough to one without and back.
func TestTLSPassthroughReload(t *testing.T) {
	tlsPort := startTLSEndpoint(t, "pass.test")
	echo := startPPEcho(t)
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	with := passthroughInputs(t, tlsPort, echo.port, map[string]string{}, false)
	without := with
	without.Ingresses = with.Ingresses[1:]
	opts := render.Options{SettingsConfigMap: "default/lb"}
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			lb := startIsoLB(t, version, bin, tmpl)
			for i, in := range []render.Inputs{with, with, without, with} {
				m, dir, _ := lb.render(t, in, opts)
				if err := lb.serve(t, dir); err != nil {
					t.Fatalf("generation %d: %v\n%s", i+1, err, lb.logs.String())
				}
				// A reload's new worker takes over the listeners; old
				// ones finish what they have.
				deadline := time.Now().Add(5 * time.Second)
				for {
					pass := ptDo(lb.httpsPort, "127.0.0.3", "pass.test", "pass.test", nil)
					term := ptDo(lb.httpsPort, "127.0.0.3", "term.test", "term.test", nil)
					passOK := (len(m.Passthrough) > 0) == (pass.org == "endpoint")
					if pass.err == nil && passOK && term.err == nil && term.org == "haproxy" && term.xff == "127.0.0.3" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("generation %d (passthrough %v): pass.test %s; term.test %s\n%s", i+1, len(m.Passthrough) > 0, pass, term, lb.logs.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if strings.Contains(lb.logs.String(), "[ALERT]") {
				t.Errorf("alerts:\n%s", lb.logs.String())
			}
		})
	}
}

// BenchmarkTerminatedTLS is the cost of the internal hop for a connection
// HAProxy terminates: one new TLS connection and request to term.test per
// op, with no passthrough Ingress (the HTTPS port is the TLS frontend) and
// with one (the TCP frontend reads the SNI name and hands the connection
// over with a PROXY v2 header).
func BenchmarkTerminatedTLS(b *testing.B) {
	tlsPort := startTLSEndpoint(b, "pass.test")
	echo := startPPEcho(b).port
	tmpl, err := templates.Load("")
	if err != nil {
		b.Fatal(err)
	}
	for version, bin := range testenv.HAProxies(b) {
		for _, pass := range []bool{false, true} {
			b.Run(fmt.Sprintf("haproxy-%s/passthrough=%v", version, pass), func(b *testing.B) {
				in := passthroughInputs(b, tlsPort, echo, map[string]string{}, false)
				if !pass {
					in.Ingresses = in.Ingresses[1:]
				}
				m := render.BuildModel(in, render.Options{SettingsConfigMap: "default/lb"})
				httpPort, httpsPort := testenv.FreePort(b), testenv.FreePort(b)
				out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)})
				if err != nil {
					b.Fatal(err)
				}
				dir := b.TempDir()
				writeFiles(b, dir, out)
				startHAProxy(b, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
				b.ResetTimer()
				for range b.N {
					if a := ptDo(httpsPort, "127.0.0.3", "term.test", "term.test", nil); a.err != nil || a.status != 200 {
						b.Fatalf("term.test: %s", a)
					}
				}
			})
		}
	}
}
