package render_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// annCase is one row of the annotation effects table: annotations on an
// Ingress of its own (host c<i>.test, its own Service with two endpoints)
// and what real requests through HAProxy must show.
type annCase struct {
	name string
	// ours are haproxy-sidecar.io annotations (without the prefix);
	// nginx the same effect under ingress-nginx's names, nil when
	// ingress-nginx has no equivalent.
	ours, nginx map[string]string
	path        string // the Ingress path (Prefix), "/" by default
	tls         bool   // the host has a TLS entry
	backendTLS  bool   // the Service's endpoints speak HTTPS
	secret      *corev1.Secret
	// canary puts the annotations on a second Ingress for the same host
	// and path, younger, with a Service of its own (one endpoint).
	canary bool
	// primary, with canary, are the primary Ingress's annotations (ours;
	// primaryNginx under ingress-nginx's names).
	primary, primaryNginx map[string]string
	// problems are the reasons the case's Ingresses may be reported with.
	problems []render.Reason
	// blackhole points the endpoints at a listener whose accept queue is
	// full: connections to it never complete.
	blackhole bool
	check     func(t *testing.T, c *annClient, nginx bool)
}

// annEcho is one endpoint: it answers with its name, the path it saw, and
// what the test asks of it (slow answers, failing health checks).
type annEcho struct {
	name    string
	port    int
	healthy atomic.Bool
	hits    atomic.Int64
	slow    atomic.Int64 // slow requests begun
}

func startAnnEcho(t *testing.T, name string, tlsCert *tls.Certificate) *annEcho {
	t.Helper()
	e := &annEcho{name: name}
	e.healthy.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// HTTP/1.1 and HTTP/2: over TLS by ALPN, in the clear with prior
	// knowledge (h2c), as backend-protocol asks.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if tlsCert != nil {
		protocols.SetHTTP2(true)
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*tlsCert}, NextProtos: []string{"h2", "http/1.1"}})
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if !e.healthy.Load() {
				w.WriteHeader(500)
			}
			return
		case "/moved":
			// An application that believes it is served elsewhere.
			w.Header().Set("Location", "http://app.internal:8080/app/page?x=1")
			w.Header().Add("Set-Cookie", "s=1; Path=/app/x; Domain=.App.Internal; HttpOnly")
			w.Header().Add("Set-Cookie", "t=2; Path=/other; Domain=elsewhere.example")
			w.WriteHeader(302)
			return
		case "/headers":
			// Headers for the header rules to replace and remove, and the
			// request's own shown back.
			w.Header().Set("X-Frame-Options", "ALLOWALL")
			w.Header().Set("L5d-Remote-Ip", "10.0.0.1")
			for name, vs := range r.Header {
				if strings.HasPrefix(name, "X-Test-") || name == "Origin" {
					w.Header()["X-Seen-"+name] = vs
				}
			}
		case "/slow":
			e.slow.Add(1)
			time.Sleep(1500 * time.Millisecond)
		case "/upgrade":
			// Switches protocols, then keeps the connection until the
			// other side closes it.
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			buf.Flush()
			io.Copy(io.Discard, conn)
			return
		case "/grpc":
			// What a gRPC server answers: a status in the trailers.
			w.Header().Set("Trailer", "Grpc-Status")
			defer w.Header().Set("Grpc-Status", "0")
		}
		e.hits.Add(1)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Prefix", strings.Join(r.Header.Values("X-Forwarded-Prefix"), ","))
		w.Header().Set("X-Endpoint", name)
		io.WriteString(w, "svc:"+name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.port = ln.Addr().(*net.TCPAddr).Port
	return e
}

// annClient sends requests for one case's host to HAProxy.
type annClient struct {
	host                string
	httpPort, httpsPort int
	echoes              [2]*annEcho
	canary              *annEcho
}

// startSlow sends a slow request (1.5 s) in the background and returns
// once an endpoint has begun answering it, with a function that waits for
// its end and names the endpoint. Not a fixed sleep: on a loaded machine
// the request can take longer than any chosen delay to reach HAProxy's
// server.
func (c *annClient) startSlow(t *testing.T) (wait func() string) {
	t.Helper()
	begun := func() (n int64) {
		for _, e := range append(c.echoes[:], c.canary) {
			if e != nil {
				n += e.slow.Load()
			}
		}
		return n
	}
	before := begun()
	var endpoint string
	done := make(chan struct{})
	go func() { defer close(done); endpoint = c.do(t, annReq{path: "/slow"}).Header.Get("X-Endpoint") }()
	for deadline := time.Now().Add(5 * time.Second); begun() == before; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow request reached no endpoint within 5s")
		}
	}
	return func() string { <-done; return endpoint }
}

// canaryShare sends n requests with header and counts those the canary's
// endpoint answered; every answer must be a 200 from one of the two
// Services.
func (c *annClient) canaryShare(t *testing.T, n int, header map[string]string) int {
	t.Helper()
	got := 0
	for range n {
		resp := c.expect(t, annReq{header: header}, 200, "")
		switch resp.Header.Get("X-Endpoint") {
		case c.canary.name:
			got++
		case c.echoes[0].name, c.echoes[1].name:
		default:
			t.Fatalf("answered by %q", resp.Header.Get("X-Endpoint"))
		}
	}
	return got
}

type annReq struct {
	method, path string
	https        bool
	header       map[string]string
	body         string
}

func (c *annClient) do(t *testing.T, r annReq) *http.Response {
	t.Helper()
	scheme, port := "http", c.httpPort
	if r.https {
		scheme, port = "https", c.httpsPort
	}
	method := r.method
	if method == "" {
		method = "GET"
	}
	path := r.path
	if path == "" {
		path = "/"
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(method, scheme+"://"+c.host+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
		},
		TLSClientConfig:   &tls.Config{ServerName: c.host, InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(data)))
	return resp
}

// endpointsOnOneConn sends n GET / over one keep-alive HTTP/1.1
// connection and returns the endpoint that answered each; every answer
// must be a 200.
func (c *annClient) endpointsOnOneConn(t *testing.T, n int) []string {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(c.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	var endpoints []string
	for i := range n {
		req, err := http.NewRequest("GET", "http://"+c.host+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := req.Write(conn); err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		resp, err := http.ReadResponse(r, req)
		if err != nil {
			t.Fatalf("response %d on one connection: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("response %d on one connection: status %d, close %v; want 200 and the connection kept", i, resp.StatusCode, resp.Close)
		}
		endpoints = append(endpoints, resp.Header.Get("X-Endpoint"))
	}
	return endpoints
}

// doH2 sends a POST over HTTP/2 (TLS with ALPN h2) to HAProxy, as a gRPC
// client would.
func (c *annClient) doH2(t *testing.T, path string) *http.Response {
	t.Helper()
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := &tls.Dialer{Config: &tls.Config{ServerName: c.host, InsecureSkipVerify: true, NextProtos: []string{"h2"}}}
			return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(c.httpsPort))
		},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "https://"+c.host+path, strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s over HTTP/2: %v", path, err)
	}
	io.ReadAll(resp.Body) // the trailers come after the body
	resp.Body.Close()
	return resp
}

// blackholeListener returns a loopback port whose accept queue is full:
// the kernel drops further SYNs, so a connection attempt neither
// completes nor fails until its own timeout.
func blackholeListener(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	// Backlog 0 admits one connection nobody accepts; it fills the queue.
	for range 2 {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("port %d still accepts connections: the accept queue is not full", port)
	}
	return port
}

// status sends r and checks the status (and, for redirects, Location).
func (c *annClient) expect(t *testing.T, r annReq, status int, location string) *http.Response {
	t.Helper()
	resp := c.do(t, r)
	if resp.StatusCode != status {
		t.Errorf("%s %s%s: status %d, want %d", r.method, c.host, r.path, resp.StatusCode, status)
	}
	if location != "" && resp.Header.Get("Location") != location {
		t.Errorf("%s%s: Location %q, want %q", c.host, r.path, resp.Header.Get("Location"), location)
	}
	return resp
}

// TestAnnotationEffects renders every case as its own Ingress, starts
// HAProxy 2.6 and 3.0 on the output and checks each effect with real
// requests; then the same with ingress-nginx's annotation names under
// --annotations-compat nginx.
func TestAnnotationEffects(t *testing.T) {
	for _, nginx := range []bool{false, true} {
		name := "haproxy-sidecar.io"
		if nginx {
			name = "nginx.ingress.kubernetes.io"
		}
		t.Run(name, func(t *testing.T) {
			var cases []annCase
			for _, c := range annCases(t) {
				if !nginx || c.nginx != nil || (c.ours == nil) {
					cases = append(cases, c)
				}
			}
			runAnnCases(t, cases, nginx)
		})
	}
}

func runAnnCases(t *testing.T, cases []annCase, nginx bool) {
	backendCertPEM, backendKeyPEM := testenv.SelfSigned(t, "backend.internal", "backend")
	backendCert, err := tls.X509KeyPair(backendCertPEM, backendKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hostCert, hostKey := testenv.SelfSigned(t, "*.test", "hosts")
	in := render.Inputs{Secrets: []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": hostCert, "tls.key": hostKey}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backend-ca"}, Data: map[string][]byte{"ca.crt": backendCertPEM}},
	}, IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
	clients := make([]*annClient, len(cases))
	pt := networkingv1.PathTypePrefix
	cls := "haproxy"
	for i, c := range cases {
		svc := "s" + strconv.Itoa(i)
		cl := &annClient{host: "c" + strconv.Itoa(i) + ".test"}
		var cert *tls.Certificate
		if c.backendTLS {
			cert = &backendCert
		}
		for j := range cl.echoes {
			cl.echoes[j] = startAnnEcho(t, svc+"-"+string(rune('a'+j)), cert)
			if c.blackhole {
				cl.echoes[j].port = blackholeListener(t)
			}
		}
		clients[i] = cl
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
		for j, e := range cl.echoes {
			port, pname, ready := int32(e.port), "http", true
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-" + strconv.Itoa(j), Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			})
		}
		ann := map[string]string{}
		src, prefix := c.ours, render.AnnotationPrefix
		if nginx {
			src, prefix = c.nginx, render.NginxAnnotationPrefix
		}
		for k, v := range src {
			ann[prefix+k] = v
		}
		path := c.path
		if path == "" {
			path = "/"
		}
		newIngress := func(name, svc string, ann map[string]string, age time.Duration) *networkingv1.Ingress {
			return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: ann,
				CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, i, 0, 0, time.UTC).Add(age))},
				Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: cl.host,
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: path, PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
		}
		ing := newIngress("c"+strconv.Itoa(i), svc, ann, 0)
		if c.canary {
			// The primary has only c.primary; the canary has the case's
			// annotations and its own Service, whose one endpoint names
			// itself.
			ing.Annotations = nil
			if primary := c.primary; primary != nil || c.primaryNginx != nil {
				if nginx {
					primary = c.primaryNginx
				}
				ing.Annotations = map[string]string{}
				for k, v := range primary {
					ing.Annotations[prefix+k] = v
				}
			}
			csvc := svc + "-canary"
			cl.canary = startAnnEcho(t, csvc, nil)
			in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: csvc},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
			port, pname, ready := int32(cl.canary.port), "http", true
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: csvc, Labels: map[string]string{discoveryv1.LabelServiceName: csvc}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			})
			in.Ingresses = append(in.Ingresses, newIngress("c"+strconv.Itoa(i)+"-canary", csvc, ann, time.Second))
		}
		if c.tls {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{cl.host}, SecretName: "tls"}}
		}
		if c.secret != nil {
			in.Secrets = append(in.Secrets, c.secret)
		}
		in.Ingresses = append(in.Ingresses, ing)
	}
	httpPort, httpsPort := freePort(t), freePort(t)
	opts := render.Options{}
	if nginx {
		opts.AnnotationsCompat = render.CompatNginx
	}
	m := render.BuildModel(in, opts)
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl,
		HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)})
	if err != nil {
		t.Fatal(err)
	}
	// Only the bad-value case and the missing Secret have problems, each
	// naming its Ingress and annotation.
	for _, p := range m.Problems {
		i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p.Name, "c"), "-canary"))
		c := cases[i]
		switch {
		case strings.HasPrefix(c.name, "bad value") && p.Reason == render.InvalidAnnotation && strings.HasPrefix(p.Field, "metadata.annotations["):
		case strings.HasPrefix(c.name, "auth-basic-secret missing") && p.Reason == render.AnnotationSecretNotFound:
		case slices.Contains(c.problems, p.Reason):
		default:
			t.Errorf("case %q: unexpected problem %s", c.name, p.Report())
		}
	}
	for i, c := range cases {
		if strings.HasPrefix(c.name, "bad value") {
			n := 0
			for _, p := range m.Problems {
				if p.Name == "c"+strconv.Itoa(i) {
					n++
				}
			}
			if n != 2 {
				t.Errorf("bad values: %d problems, want 2", n)
			}
		}
	}
	// The config-parser oracle accepts what annotations add, and only that.
	checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, haproxycfg.Config{
		HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)})
	dir := t.TempDir()
	writeFiles(t, dir, out)
	if t.Failed() {
		t.Logf("haproxy.cfg:\n%s", out.Get(haproxycfg.ConfigFile))
	}
	var explained atomic.Int32
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			for i, c := range cases {
				cl := *clients[i]
				cl.httpPort, cl.httpsPort = httpPort, httpsPort
				t.Run(c.name, func(t *testing.T) {
					c.check(t, &cl, nginx)
					// explain's redirects, for GET / over plain HTTP, are
					// what HAProxy answers.
					if e := m.Explain(render.Request{Host: cl.host, Path: "/"}); e.Answer == render.AnswerRedirect && !c.canary {
						explained.Add(1)
						cl.expect(t, annReq{}, e.RedirectCode, e.Location)
					}
				})
			}
		})
	}
	// ssl-redirect (301 and 308), app-root, permanent- and temporal-redirect
	// on each version; ingress-nginx's names have a few of them.
	if explained.Load() < 4 {
		t.Errorf("explain predicted %d redirects, want the redirect cases'", explained.Load())
	}
}

// The per-Ingress backend serves only its Ingress: another Ingress on the
// same Service keeps the plain backend and none of the rules.
func TestAnnotationsStayOnTheirIngress(t *testing.T) {
	in := render.Inputs{Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}}}
	cls, pt := "haproxy", networkingv1.PathTypePrefix
	for i, host := range []string{"locked.test", "open.test"} {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: strings.TrimSuffix(host, ".test"),
			CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, i, 0, 0, time.UTC))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
		if i == 0 {
			ing.Annotations = map[string]string{render.AnnotationPrefix + "denylist-source-range": "0.0.0.0/0"}
		}
		in.Ingresses = append(in.Ingresses, ing)
	}
	in.IngressClasses = []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"}, Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}
	m := render.BuildModel(in, render.Options{})
	got := map[string]string{}
	for _, r := range m.Routes {
		got[r.Host] = r.Backend
	}
	if got["locked.test"] != "default_web_80:locked" || got["open.test"] != "default_web_80" {
		t.Errorf("backends %v", got)
	}
	var names []string
	for _, b := range m.Backends {
		names = append(names, b.Name)
	}
	if fmt.Sprint(names) != "[default_web_80 default_web_80:locked]" {
		t.Errorf("backends %v", names)
	}
}

// With the trusted-proxies setting, source ranges and rate limits see the
// last X-Forwarded-For address of requests from a trusted proxy, and the
// connection's address otherwise; without it the header is never read.
func TestTrustedProxies(t *testing.T) {
	for _, trusted := range []string{"127.0.0.0/8, 10.0.0.1", "10.0.0.1"} {
		t.Run("trusted-proxies "+trusted, func(t *testing.T) {
			loopbackTrusted := strings.HasPrefix(trusted, "127.")
			cls, pt := "haproxy", networkingv1.PathTypePrefix
			in := render.Inputs{
				IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
					Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
				ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lb"},
					Data: map[string]string{"trusted-proxies": trusted}}},
			}
			echo := startAnnEcho(t, "web", nil)
			port, pname, ready := int32(echo.port), "http", true
			in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			})
			for i, ann := range []map[string]string{
				{"allowlist-source-range": "203.0.113.0/24"},
				{"denylist-source-range": "198.51.100.7"},
				{"rate-limit-rps": "2"},
			} {
				host := "t" + strconv.Itoa(i) + ".test"
				a := map[string]string{}
				for k, v := range ann {
					a[render.AnnotationPrefix+k] = v
				}
				in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "t" + strconv.Itoa(i), Annotations: a},
					Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
						IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
							Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
								Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
			}
			m := render.BuildModel(in, render.Options{SettingsConfigMap: "default/lb"})
			if len(m.Problems) > 0 {
				t.Fatalf("problems: %v", m.Problems)
			}
			onHAProxies(t, m, func(t *testing.T, httpPort int) {
				c := func(i int) *annClient { return &annClient{host: "t" + strconv.Itoa(i) + ".test", httpPort: httpPort} }
				xff := func(v string) map[string]string { return map[string]string{"X-Forwarded-For": v} }
				believed := func(yes, no int) int {
					if loopbackTrusted {
						return yes
					}
					return no
				}
				// Allowlist 203.0.113.0/24: the connection (loopback)
				// is outside it.
				c(0).expect(t, annReq{}, 403, "")
				c(0).expect(t, annReq{header: xff("203.0.113.5")}, believed(200, 403), "")
				c(0).expect(t, annReq{header: xff("203.0.113.5, 10.1.1.1")}, 403, "") // the last address decides
				c(0).expect(t, annReq{header: xff("10.1.1.1, 203.0.113.5")}, believed(200, 403), "")
				c(0).expect(t, annReq{header: xff("not-an-address")}, 403, "")
				// Denylist 198.51.100.7.
				c(1).expect(t, annReq{}, 200, "")
				c(1).expect(t, annReq{header: xff("198.51.100.7")}, believed(403, 200), "")
				// Rate limits count per believed client: two clients
				// behind the proxy have two budgets.
				ok := map[string]int{}
				for range 4 {
					for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
						switch code := c(2).do(t, annReq{header: xff(client)}).StatusCode; code {
						case 200:
							ok[client]++
						case 429:
						default:
							t.Errorf("rate limit: status %d", code)
						}
					}
				}
				// At 2/s, 2 pass (3 when the requests straddle HAProxy's
				// one-second period).
				if loopbackTrusted {
					for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
						if ok[client] < 2 || ok[client] > 3 {
							t.Errorf("rate limit 2/s, 4 requests from %s behind the trusted proxy: %d passed, want 2 (its own budget)", client, ok[client])
						}
					}
				} else if n := ok["192.0.2.1"] + ok["192.0.2.2"]; n < 2 || n > 3 {
					t.Errorf("rate limit 2/s, 8 requests over one untrusted connection address: %d passed, want 2 (one budget)", n)
				}
			})
		})
	}
}

// onHAProxies renders m with the built-in template, HTTP on a free
// loopback port, checks its structure with the config-parser oracle,
// writes it and runs check against each HAProxy version serving it, as a
// subtest.
func onHAProxies(t *testing.T, m *render.Model, check func(t *testing.T, httpPort int)) {
	t.Helper()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := freePort(t)
	rc := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	out, err := haproxycfg.Render(m, rc)
	if err != nil {
		t.Fatal(err)
	}
	checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, haproxycfg.Config{HTTPBind: rc.HTTPBind, HTTPSBind: rc.HTTPSBind})
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			check(t, httpPort)
		})
	}
}
