package render_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
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

// authService is a real HTTP auth service on loopback. Its answer depends
// on the path auth-url names and on the Authorization header HAProxy
// forwards; it remembers the last request it got for each original host.
type authService struct {
	port int
	mu   sync.Mutex
	seen map[string]*http.Request // by X-Forwarded-Host
	hits map[string]int
}

func startAuthService(t *testing.T) *authService {
	t.Helper()
	a := &authService{seen: map[string]*http.Request{}, hits: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen[r.Header.Get("X-Forwarded-Host")] = r.Clone(r.Context())
		a.hits[r.Header.Get("X-Forwarded-Host")]++
		a.mu.Unlock()
		// A body the sidecar must not pass on anywhere.
		body := "auth service body"
		switch r.URL.Path {
		case "/allow":
			w.Header().Set("X-Auth-User", "alice")
			w.Header().Set("X-Auth-Email", "alice@example.com")
			w.Header().Set("X-Unlisted", "leaked")
		case "/check":
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				w.Header().Set("X-Auth-User", "bob")
			case "Bearer forbidden":
				w.WriteHeader(http.StatusForbidden)
			default:
				w.Header().Set("WWW-Authenticate", `Bearer realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
			}
		case "/slow":
			time.Sleep(time.Duration(render.ExtAuthTimeoutMS)*time.Millisecond + time.Second)
		case "/huge":
			// More than Lua may hold (tune.lua.maxmem): the answer must
			// fail, not make HAProxy hold it.
			w.Header().Set("X-Auth-User", "huge")
			chunk := strings.Repeat("x", 1<<20)
			for range 512 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			return
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/method":
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusForbidden)
			}
		}
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a.port = ln.Addr().(*net.TCPAddr).Port
	return a
}

func (a *authService) last(host string) (*http.Request, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[host], a.hits[host]
}

// headerEcho answers with the request headers it got, one "Name: value"
// line each.
func headerEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		}) {
			for _, v := range r.Header[k] {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
		}
		io.WriteString(w, b.String())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// refusedPort is a loopback port nothing listens on.
func refusedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// extAuthCase is one Ingress (host <name>.test) and what requests to it
// must show, through HAProxy 2.6 and 3.0.
type extAuthCase struct {
	name string
	// ours and nginx are the annotations under each prefix (nginx nil:
	// the same as ours).
	ours, nginx map[string]string
	// closed: the Ingress fails closed with an InvalidAnnotation problem.
	closed bool
	// slow: the check waits for HAProxy's client to give up; such
	// checks run in parallel.
	slow  bool
	check func(t *testing.T, c *annClient, auth *authService)
}

func extAuthCases() []extAuthCase {
	seesHeader := func(t *testing.T, resp *http.Response, line string, want bool) {
		t.Helper()
		body, _ := io.ReadAll(resp.Body)
		if got := slices.Contains(strings.Split(string(body), "\n"), line); got != want {
			t.Errorf("endpoint saw %q: %v, want %v; it saw:\n%s", line, got, want, body)
		}
	}
	return []extAuthCase{{
		name: "allow",
		ours: map[string]string{"auth-url": "http://auth/allow", "auth-response-headers": "X-Auth-User, x-auth-email"},
		check: func(t *testing.T, c *annClient, auth *authService) {
			resp := c.expect(t, annReq{path: "/p?q=1", header: map[string]string{
				"X-Auth-User": "mallory", "Authorization": "Basic eA==", "Cookie": "s=1", "X-Secret": "client only"}}, 200, "")
			body, _ := io.ReadAll(resp.Body)
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			// The listed headers come from the auth service, the
			// client's own is gone; an unlisted one is not copied.
			seesHeader(t, resp, "X-Auth-User: alice", true)
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			seesHeader(t, resp, "X-Auth-User: mallory", false)
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			seesHeader(t, resp, "X-Auth-Email: alice@example.com", true)
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			seesHeader(t, resp, "X-Unlisted: leaked", false)
			if strings.Contains(string(body), "auth service body") {
				t.Errorf("the auth service's body reached the endpoint")
			}
			// What the auth service got: the request's credentials and
			// where it was going, nothing else of the client's.
			r, _ := auth.last(c.host)
			if r == nil {
				t.Fatal("the auth service got no request")
			}
			for k, want := range map[string]string{
				"Authorization": "Basic eA==", "Cookie": "s=1", "X-Original-Url": "http://" + c.host + "/p?q=1",
				"X-Original-Method": "GET", "X-Forwarded-Proto": "http", "X-Real-Ip": "127.0.0.1", "X-Auth-Request-Redirect": "/p?q=1",
				"X-Secret": "", "X-Auth-User": "",
			} {
				if got := r.Header.Get(k); got != want {
					t.Errorf("auth service got %s %q, want %q", k, got, want)
				}
			}
			if r.Method != "GET" || r.URL.RequestURI() != "/allow" || r.Host != "auth" {
				t.Errorf("auth service got %s %s Host %s, want GET /allow Host auth", r.Method, r.URL.RequestURI(), r.Host)
			}
		},
	}, {
		name: "deny",
		ours: map[string]string{"auth-url": "http://auth.default.svc.cluster.local:80/check", "auth-response-headers": "X-Auth-User"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			resp := c.expect(t, annReq{}, 401, "")
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="test"` {
				t.Errorf("WWW-Authenticate %q, want the auth service's", got)
			}
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer forbidden"}}, 403, "")
			resp = c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 200, "")
			seesHeader(t, resp, "X-Auth-User: bob", true)
		},
	}, {
		name: "signin",
		ours: map[string]string{"auth-url": "http://auth.default:80/check", "auth-signin": "https://login.example/start"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{path: "/a/b?x=1&y=2"}, 302, "https://login.example/start?rd=http%3A%2F%2F"+c.host+"%2Fa%2Fb%3Fx%3D1%26y%3D2")
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer forbidden"}}, 403, "")
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 200, "")
		},
	}, {
		name: "signin-vars",
		ours: map[string]string{"auth-url": "http://auth.default.svc/check", "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{path: "/a?x=1"}, 302, "https://"+c.host+"/oauth2/start?rd=%2Fa%3Fx%3D1")
		},
	}, {
		name: "signin-param",
		ours: map[string]string{"auth-url": "http://auth/check", "auth-signin": "/login", "auth-signin-redirect-param": "next"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{path: "/a"}, 302, "/login?next=http%3A%2F%2F"+c.host+"%2Fa")
		},
	}, {
		name: "method",
		ours: map[string]string{"auth-url": "http://auth/method", "auth-method": "POST"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{}, 200, "")
		},
	}, {
		name: "no-endpoints",
		ours: map[string]string{"auth-url": "http://auth-down/check"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
		},
	}, {
		name: "refused",
		ours: map[string]string{"auth-url": "http://auth-refused/check"},
		slow: true,
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
		},
	}, {
		name: "no-service",
		ours: map[string]string{"auth-url": "http://auth-missing/check"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
		},
	}, {
		name: "other-status",
		ours: map[string]string{"auth-url": "http://auth/teapot"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			c.expect(t, annReq{}, 500, "")
		},
	}, {
		name: "slow",
		ours: map[string]string{"auth-url": "http://auth/slow"},
		slow: true,
		check: func(t *testing.T, c *annClient, auth *authService) {
			_, before := auth.last(c.host)
			deniedWithinBound(t, c, render.ExtAuthTimeoutMS)
			if _, n := auth.last(c.host); n-before < 1 || n-before > render.ExtAuthAttempts {
				n -= before
				t.Errorf("auth service asked %d times, want 1 to %d", n, render.ExtAuthAttempts)
			}
		},
	}, {
		name: "blackhole",
		ours: map[string]string{"auth-url": "http://auth-blackhole/check"},
		slow: true,
		check: func(t *testing.T, c *annClient, _ *authService) {
			deniedWithinBound(t, c, render.ExtAuthConnectTimeoutMS)
		},
	}, {
		name: "huge",
		ours: map[string]string{"auth-url": "http://auth/huge", "auth-response-headers": "X-Auth-User"},
		check: func(t *testing.T, c *annClient, _ *authService) {
			deniedWithinBound(t, c, render.ExtAuthTimeoutMS)
			// HAProxy still serves.
			other := *c
			other.host = "deny.test"
			other.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 200, "")
		},
	}, {
		name:   "other-namespace",
		ours:   map[string]string{"auth-url": "http://auth.other/check"},
		closed: true,
	}, {
		name:   "external-host",
		ours:   map[string]string{"auth-url": "http://auth.example.com/check"},
		closed: true,
	}, {
		name:   "ip-address",
		ours:   map[string]string{"auth-url": "http://127.0.0.1:" + "80/check"},
		closed: true,
	}, {
		name:   "bad-response-header",
		ours:   map[string]string{"auth-url": "http://auth/allow", "auth-response-headers": "Content-Length"},
		closed: true,
	}, {
		name:   "nginx-variables",
		ours:   map[string]string{"auth-url": "http://auth/allow", "auth-signin": "https://$host/x?u=$remote_addr"},
		closed: true,
	}, {
		// oauth2-proxy's usual values: the auth service is the route of
		// the request's host for /check (an Ingress of the namespace
		// routes it to the auth Service, throughHostRoutes).
		name: "through-host",
		ours: map[string]string{"auth-url": "https://$host/check", "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri",
			"auth-response-headers": "X-Auth-User"},
		check: func(t *testing.T, c *annClient, auth *authService) {
			c.expect(t, annReq{path: "/a?x=1"}, 302, "https://"+c.host+"/oauth2/start?rd=%2Fa%3Fx%3D1")
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer forbidden"}}, 403, "")
			resp := c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 200, "")
			seesHeader(t, resp, "X-Auth-User: bob", true)
			r, _ := auth.last(c.host)
			if r == nil || r.Host != c.host || r.URL.RequestURI() != "/check" {
				t.Errorf("the auth service got %v, want GET /check with the request's Host %s", r, c.host)
			}
		},
	}, {
		// The auth path falls to the host's catch-all route, the
		// application itself: no route of its own, denied.
		name: "through-host-no-route",
		ours: map[string]string{"auth-url": "http://$host/oauth2/auth"},
		check: func(t *testing.T, c *annClient, auth *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
		},
	}, {
		// The auth path's route is another namespace's.
		name: "through-host-other-namespace",
		ours: map[string]string{"auth-url": "https://$host/check"},
		check: func(t *testing.T, c *annClient, auth *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
			if _, n := auth.last(c.host); n != 0 {
				t.Errorf("another namespace's route was asked %d times", n)
			}
		},
	}, {
		// The auth path's route carries route annotations (its own
		// backend, with its protections): not asked directly.
		name: "through-host-annotated",
		ours: map[string]string{"auth-url": "https://$host/check"},
		check: func(t *testing.T, c *annClient, auth *authService) {
			c.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 500, "")
		},
	}, {
		name:   "through-host-bad",
		ours:   map[string]string{"auth-url": "https://$host:8443/check"},
		closed: true,
	}}
}

// throughHostRoutes are the Ingresses that route the auth path of the
// through-host cases: the auth Service for through-host (same namespace)
// and through-host-annotated (with a route annotation), another
// namespace's for through-host-other-namespace.
func throughHostRoutes(prefix string) []*networkingv1.Ingress {
	cls := "haproxy"
	pt := networkingv1.PathTypePrefix
	ing := func(ns, name, host string, ann map[string]string) *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann,
			CreationTimestamp: metav1.NewTime(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/check", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "auth", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	}
	annotated := map[string]string{prefix + "timeout-server": "5s", prefix + "ssl-redirect": "false"}
	if prefix == render.NginxAnnotationPrefix {
		annotated = map[string]string{prefix + "proxy-read-timeout": "5", prefix + "ssl-redirect": "false"}
	}
	return []*networkingv1.Ingress{
		ing("default", "through-host-auth", "through-host.test", nil),
		ing("other", "through-host-other-namespace-auth", "through-host-other-namespace.test", nil),
		ing("default", "through-host-annotated-auth", "through-host-annotated.test", annotated),
	}
}

// deniedWithinBound sends GET / and wants a 500 within the bound of the
// HTTP client's attempts, each of at most perAttempt (and some slack for a
// loaded machine).
func deniedWithinBound(t *testing.T, c *annClient, perAttemptMS int) {
	t.Helper()
	start := time.Now()
	// Longer than annClient's 10 s: the bound below is what is checked,
	// not the client's patience.
	hc := &http.Client{Timeout: 60 * time.Second}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(c.httpPort)+"/", nil)
	req.Host = c.host
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	bound := time.Duration(render.ExtAuthAttempts*perAttemptMS)*time.Millisecond + 3*time.Second
	if took := time.Since(start); took > bound {
		t.Errorf("denied after %v, want within %v", took, bound)
	}
}

// TestExtAuth renders each case as its own Ingress beside a real auth
// service and checks the answers through HAProxy 2.6 and 3.0, under our
// annotation names and ingress-nginx's.
func TestExtAuth(t *testing.T) {
	for _, nginx := range []bool{false, true} {
		name := "haproxy-sidecar.io"
		if nginx {
			name = "nginx.ingress.kubernetes.io"
		}
		t.Run(name, func(t *testing.T) { runExtAuth(t, nginx) })
	}
}

func runExtAuth(t *testing.T, nginx bool) {
	auth := startAuthService(t)
	echo := headerEcho(t)
	cases := extAuthCases()
	ready := true
	pname := "http"
	slice := func(svc string, port int) *discoveryv1.EndpointSlice {
		p := int32(port)
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &p}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		}
	}
	service := func(ns, name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	}
	cls := "haproxy"
	in := render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		// auth-down has no endpoints; auth-refused one that refuses
		// connections; "other" has an auth Service of its own that
		// default's Ingresses may not use.
		Services:       []*corev1.Service{service("default", "app"), service("default", "app2"), service("default", "auth"), service("default", "auth-down"), service("default", "auth-refused"), service("default", "auth-blackhole"), service("other", "auth")},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("app", echo), slice("app2", echo), slice("auth", auth.port), slice("auth-refused", refusedPort(t)), slice("auth-blackhole", blackholeListener(t))},
	}
	otherSlice := slice("auth", auth.port)
	otherSlice.Namespace = "other"
	in.EndpointSlices = append(in.EndpointSlices, otherSlice)
	pt := networkingv1.PathTypePrefix
	prefix := render.AnnotationPrefix
	if nginx {
		prefix = render.NginxAnnotationPrefix
	}
	for i, c := range cases {
		src := c.ours
		if nginx && c.nginx != nil {
			src = c.nginx
		}
		ann := map[string]string{}
		for k, v := range src {
			ann[prefix+k] = v
		}
		if nginx {
			// Accepted without effect: every request asks the service.
			ann[prefix+"auth-cache-key"] = "$remote_user$http_authorization"
		}
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: c.name, Annotations: ann,
			CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, i, 0, 0, time.UTC))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: c.name + ".test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
	}
	in.Ingresses = append(in.Ingresses, throughHostRoutes(prefix)...)
	// A canary of deny.test takes every request, and runs its primary's
	// external authentication first, as ingress-nginx does.
	canary := in.Ingresses[slices.IndexFunc(cases, func(c extAuthCase) bool { return c.name == "deny" })].DeepCopy()
	canary.Name, canary.CreationTimestamp = "deny-canary", metav1.NewTime(canary.CreationTimestamp.Add(time.Hour))
	canary.Annotations = map[string]string{prefix + "canary": "true", prefix + "canary-weight": "100"}
	canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "app2"
	in.Ingresses = append(in.Ingresses, canary)
	opts := render.Options{}
	if nginx {
		opts.AnnotationsCompat = render.CompatNginx
	}
	m := render.BuildModel(in, opts)
	if r := slices.IndexFunc(m.Routes, func(r *render.Route) bool { return r.Host == "deny.test" }); r < 0 || m.Routes[r].Canary == nil ||
		!strings.HasPrefix(m.Routes[r].Canary.Backend, "default_app2_80:") {
		t.Fatalf("deny.test has no canary on app2")
	} else if i := slices.IndexFunc(m.Backends, func(be *render.Backend) bool { return be.Name == m.Routes[r].Canary.Backend }); i < 0 || m.Backends[i].ExtAuthBackend != "default_auth_80" {
		t.Fatalf("the canary's backend does not ask the primary's auth service")
	}
	// The other namespace's auth route is served: what denies is the
	// script's namespace check, not a missing route.
	if !slices.ContainsFunc(m.Routes, func(r *render.Route) bool {
		return r.Host == "through-host-other-namespace.test" && r.Path == "/check" && strings.HasPrefix(r.Backend, "other_auth_80")
	}) {
		t.Fatalf("through-host-other-namespace.test/check is not routed to other/auth")
	}
	// The problems: the refused values, and the auth Services that cannot
	// be asked, each on its Ingress.
	want := map[string][]render.Reason{"no-endpoints": {render.NoEndpoints}, "no-service": {render.BackendNotFound}}
	for _, c := range cases {
		if c.closed {
			want[c.name] = []render.Reason{render.InvalidAnnotation}
		}
	}
	got := map[string][]render.Reason{}
	for _, p := range m.Problems {
		if p.Kind != "Ingress" || !strings.HasPrefix(p.Field, "metadata.annotations[") {
			t.Errorf("unexpected problem %s", p.Report())
			continue
		}
		got[p.Name] = append(got[p.Name], p.Reason)
	}
	for name, reasons := range want {
		if len(got[name]) == 0 || !slices.Contains(reasons, got[name][0]) {
			t.Errorf("Ingress %s: problems %v, want %v", name, got[name], reasons)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("Ingress %s: unexpected problems %v", name, got[name])
		}
	}

	// explain says who is asked first.
	if got := m.Explain(render.Request{Host: "allow.test", Path: "/"}).String(); !strings.Contains(got, "first asks the auth service default/auth port 80 (backend default_auth_80)") {
		t.Errorf("explain does not name the auth service:\n%s", got)
	}
	if got := m.Explain(render.Request{Host: "through-host.test", Path: "/"}).String(); !strings.Contains(got, "routes the request's host and /check to") {
		t.Errorf("explain does not say the auth service is found through the host:\n%s", got)
	}
	if got := m.Explain(render.Request{Host: "no-service.test", Path: "/"}).String(); !strings.Contains(got, "cannot be asked") {
		t.Errorf("explain does not say the auth service cannot be asked:\n%s", got)
	}

	httpPort, httpsPort := freePort(t), freePort(t)
	rc := haproxycfg.Config{HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rc.Template = tmpl
	out, err := haproxycfg.Render(m, rc)
	if err != nil {
		t.Fatal(err)
	}
	if out.Get(haproxycfg.ExtAuthScriptFile) == nil {
		t.Fatalf("no %s in the output", haproxycfg.ExtAuthScriptFile)
	}
	rc.Template = nil
	checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, rc)
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			for _, c := range cases {
				cl := &annClient{host: c.name + ".test", httpPort: httpPort, httpsPort: httpsPort}
				t.Run(c.name, func(t *testing.T) {
					if c.slow {
						t.Parallel()
					}
					if c.closed {
						cl.expect(t, annReq{header: map[string]string{"Authorization": "Bearer good"}}, 503, "")
						if _, n := auth.last(cl.host); n != 0 {
							t.Errorf("a refused auth-url was asked %d times", n)
						}
						return
					}
					c.check(t, cl, auth)
				})
			}
		})
	}
	if t.Failed() {
		t.Logf("haproxy.cfg:\n%s", out.Get(haproxycfg.ConfigFile))
	}
}

// TestExtAuthUnusedLeavesConfig: without auth-url, no script is written
// and nothing of it is in haproxy.cfg.
func TestExtAuthUnusedLeavesConfig(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	m := render.BuildModel(render.Inputs{}, render.Options{})
	out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl, HTTPBind: ":80", HTTPSBind: ":443"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Get(haproxycfg.ExtAuthScriptFile) != nil || strings.Contains(string(out.Get(haproxycfg.ConfigFile)), "lua") {
		t.Errorf("external authentication's script is loaded without auth-url")
	}
}

// TestExtAuthScriptMaps: the script reads the routing maps by the paths
// the frontend and the runtime updates use.
func TestExtAuthScriptMaps(t *testing.T) {
	script := string(haproxycfg.ExtAuthScript())
	for _, f := range []string{render.ExactMapFile, render.PrefixMapFile} {
		if !strings.Contains(script, `Map.new("`+f+`"`) {
			t.Errorf("extauth.lua does not load %s", f)
		}
	}
}
