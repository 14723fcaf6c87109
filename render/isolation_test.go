package render_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
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
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// Isolation as a property (issue 21: no tenant can take down, slow down or
// route around another). Tenant B (namespace tenant-b) has a fixed set of
// Ingresses with varied protections. Tenant A (namespace tenant-a) adds,
// changes and deletes random objects drawn from everything the sidecar
// accepts: valid, invalid and hostile annotation values (ours and
// ingress-nginx's), canaries, hosts and paths that collide with B's,
// default backends, TLS entries, htpasswd, TLS and CA Secrets, Services
// and EndpointSlices named like B's. After every step, through real
// HAProxy 2.6 and 3.0 reloaded by their master, every request of a fixed
// set for B's routes must get the answer it got with B alone, except
// where README documents a rule that crosses namespaces (isoDocumented).
// Every few steps B changes: the change must be served, rendered
// incrementally (only the Ingresses sharing its host evaluated again), and
// its render and `haproxy -c` must stay within a bound of the same change
// without A.
//
// A failure names the seed and step; ISOLATION_SEED and ISOLATION_STEPS
// replay it. ISOLATION_DURATION runs longer (the default is 20s per
// annotation mode, both HAProxy versions at each step).

// A writes canary Ingresses for B's very routes (weight 100, by header,
// by cookie, ours and ingress-nginx's: a canary attaches only to a primary
// of its own namespace), htpasswd Secrets whose hashes would ask HAProxy
// for unbounded work (bcrypt cost 31, SHA-crypt rounds=999999999: bounded
// by render), and TLS entries without hosts whose certificate names B's
// TLS host (crt-list lines name the hosts a hostless certificate is
// offered for, never another line's).

const (
	isoNSA = "tenant-a"
	isoNSB = "tenant-b"
)

// isoBorn is B's creation time; A's objects are all younger, so that "the
// oldest Ingress owns a host and path" (README, Conflicts) protects B.
var isoBorn = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// isoReq is one request of B's fixed set, with what B alone answers
// (want, and want1 once B's change is served when it differs).
type isoReq struct {
	host, path  string // Host header (may carry a port and capitals), path with query
	https       bool
	method      string
	header      map[string]string
	body        int
	want, want1 string // isoAnswer.brief()
	name        string
	sni         string // the host without port, lower case
	pathNoQuery string
	wantFor     func(state int) string
	checkExtra  func(a isoAnswer) string // a further check on B alone's answer
}

// isoAnswer is what the test compares: status, the echo server that
// answered, the path it saw, and the headers B's protections produce.
type isoAnswer struct {
	Status                    int
	Endpoint, SeenPath        string
	Location, WWWAuthenticate string
	AllowOrigin, AllowMethods string
	HSTS, Cert, Err           string
}

func (a isoAnswer) brief() string {
	if a.Err != "" {
		return "error"
	}
	s := strconv.Itoa(a.Status)
	if a.Endpoint != "" {
		s += " " + a.Endpoint
	}
	if a.Location != "" {
		s += " " + a.Location
	}
	return s
}

func (a isoAnswer) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(hShort(v)))
		}
	}
	parts = append(parts, "status="+strconv.Itoa(a.Status))
	add("endpoint", a.Endpoint)
	add("seen-path", a.SeenPath)
	add("location", a.Location)
	add("www-authenticate", a.WWWAuthenticate)
	add("acao", a.AllowOrigin)
	add("acam", a.AllowMethods)
	add("hsts", a.HSTS)
	add("cert", a.Cert)
	add("error", a.Err)
	return strings.Join(parts, " ")
}

// isoRequests is B's request set: hosts, paths, headers, cookies,
// credentials and source handling, with and without auth, and the headers
// and cookies A's canaries and protections use.
func isoRequests() []isoReq {
	// What A's canaries look for (canaries()): each of B's routes is
	// asked with all of them at once, and with the header value.
	canaryHdrs := map[string]string{"X-Canary": "always", "X-B-Canary": "always", "Cookie": "canary=always; beta=always"}
	canaryValue := map[string]string{"X-Canary": "yes"}
	reqs := []isoReq{
		{name: "b1 /", host: "b1.test", path: "/", want: "200 b-web"},
		{name: "b1 /api/x", host: "b1.test", path: "/api/x", want: "200 b-api"},
		{name: "b1 /api/x with B's canary header", host: "b1.test", path: "/api/x", header: map[string]string{"X-B-Canary": "always"}, want: "200 b-canary"},
		{name: "b1 /api with B's canary header never", host: "b1.test", path: "/api", header: map[string]string{"X-B-Canary": "never"}, want: "200 b-api"},
		{name: "b1 /exact (B's change)", host: "b1.test", path: "/exact", want: "200 b-api", want1: "200 b-web"},
		{name: "b1 /exact/sub", host: "b1.test", path: "/exact/sub", want: "200 b-web"},
		{name: "b1 rewrite", host: "b1.test", path: "/rw/users?id=1", want: "200 b-api",
			checkExtra: func(a isoAnswer) string { return want(a.SeenPath, "/v2/users?id=1") }},
		{name: "b1 CORS preflight", host: "b1.test", path: "/", method: "OPTIONS",
			header: map[string]string{"Origin": "https://app.b.example", "Access-Control-Request-Method": "POST"}, want: "204",
			checkExtra: func(a isoAnswer) string { return want(a.AllowOrigin, "https://app.b.example") }},
		{name: "b1 other origin", host: "b1.test", path: "/", header: map[string]string{"Origin": "https://evil.example"}, want: "200 b-web",
			checkExtra: func(a isoAnswer) string { return want(a.AllowOrigin, "") }},
		{name: "b1 Host with port and capitals", host: "B1.TEST:80", path: "/api/v1/x", want: "200 b-api"},
		{name: "b1 /api/v1 with the canary headers and cookies (B's canary takes it)", host: "b1.test", path: "/api/v1", header: canaryHdrs, want: "200 b-canary"},
		{name: "b1 / with A's canary header value", host: "b1.test", path: "/", header: map[string]string{"X-Canary": "yes", "X-A": "always"}, want: "200 b-web"},
		{name: "b1 HTTPS", host: "b1.test", path: "/api", https: true, want: "200 b-api"},
		{name: "b1 /rw with A's canary cookie", host: "b1.test", path: "/rw", header: canaryHdrs, want: "200 b-api"},
		{name: "b2 no credentials", host: "b2.test", path: "/", want: "401",
			checkExtra: func(a isoAnswer) string { return want(a.WWWAuthenticate, `Basic realm="B realm"`) }},
		{name: "b2 wrong password", host: "b2.test", path: "/", header: basic("alice", "wrong"), want: "401"},
		{name: "b2 alice (bcrypt)", host: "b2.test", path: "/", header: basic("alice", "s3cret"), want: "200 b-web"},
		{name: "b2 bob (SHA-crypt)", host: "b2.test", path: "/x", header: basic("bob", "secret"), want: "200 b-web"},
		{name: "b2 A's user", host: "b2.test", path: "/", header: basic("mallory", "m4llory"), want: "401"},
		{name: "b2 A's canary header, no credentials", host: "b2.test", path: "/", header: canaryHdrs, want: "401"},
		{name: "b3 outside the allowlist", host: "b3.test", path: "/", want: "403"},
		{name: "b3 X-Forwarded-For from an untrusted client", host: "b3.test", path: "/", header: map[string]string{"X-Forwarded-For": "10.1.1.1"}, want: "403"},
		{name: "b3 /open", host: "b3.test", path: "/open", want: "200 b-web"},
		{name: "b3 /open with A's canary header", host: "b3.test", path: "/open/x", header: canaryHdrs, want: "200 b-web"},
		{name: "b4 rate-limited route", host: "b4.test", path: "/", want: "200 b-api"},
		{name: "b4 body over the limit", host: "b4.test", path: "/", method: "POST", body: 2048, want: "413"},
		{name: "b5 permanent redirect", host: "b5.test", path: "/anything", want: "301 https://new.b.example/"},
		{name: "b6 app-root", host: "b6.test", path: "/", want: "302 /home"},
		{name: "b6 /home", host: "b6.test", path: "/home", want: "200 b-web"},
		{name: "b7 plain HTTP to a TLS host", host: "b7.test", path: "/p", want: "308 https://b7.test/p"},
		{name: "b7 HTTPS", host: "b7.test", path: "/p", https: true, want: "200 b-web",
			checkExtra: func(a isoAnswer) string {
				return want(a.Cert+" "+a.HSTS, "b7.test/tenant-b max-age=31536000; includeSubDomains")
			}},
		{name: "b8 ssl-redirect true, code 301", host: "b8.test", path: "/q?x=1", want: "301 https://b8.test/q?x=1"},
		{name: "b8 HTTPS", host: "b8.test", path: "/q", https: true, want: "200 b-api"},
	}
	for _, c := range []struct {
		host, path string
		https      bool
		want       string
		want1      string
	}{
		{"b1.test", "/", false, "200 b-web", ""},
		{"b1.test", "/exact", false, "200 b-api", "200 b-web"},
		{"b2.test", "/", false, "401", ""},
		{"b3.test", "/", false, "403", ""},
		{"b3.test", "/open", false, "200 b-web", ""},
		{"b4.test", "/", false, "200 b-api", ""},
		{"b5.test", "/", false, "301 https://new.b.example/", ""},
		{"b6.test", "/", false, "302 /home", ""},
		{"b7.test", "/", false, "308 https://b7.test/", ""},
		{"b7.test", "/", true, "200 b-web", ""},
		{"b8.test", "/", false, "301 https://b8.test/", ""},
	} {
		for _, h := range []map[string]string{canaryHdrs, canaryValue} {
			reqs = append(reqs, isoReq{name: c.host + " " + c.path + " with " + strings.Join(slices.Sorted(maps.Keys(h)), ", "),
				host: c.host, path: c.path, https: c.https, header: h, want: c.want, want1: c.want1})
		}
	}
	for i := range reqs {
		r := &reqs[i]
		if r.method == "" {
			r.method = "GET"
		}
		r.sni = strings.ToLower(strings.Split(r.host, ":")[0])
		r.pathNoQuery, _, _ = strings.Cut(r.path, "?")
		w0, w1 := r.want, r.want1
		if w1 == "" {
			w1 = w0
		}
		r.wantFor = func(state int) string {
			if state == 1 {
				return w1
			}
			return w0
		}
	}
	return reqs
}

func want(got, want string) string {
	if got != want {
		return fmt.Sprintf("%q, want %q", got, want)
	}
	return ""
}

// isoPath is one path of a fixture Ingress.
type isoPath struct {
	path string
	pt   networkingv1.PathType
	svc  string
}

func isoIngress(ns, name string, born time.Time, host string, ann map[string]string, paths ...isoPath) *networkingv1.Ingress {
	cls := "haproxy"
	a := map[string]string{}
	for k, v := range ann {
		a[render.AnnotationPrefix+k] = v
	}
	var hp []networkingv1.HTTPIngressPath
	for _, p := range paths {
		pt := p.pt
		hp = append(hp, networkingv1.HTTPIngressPath{Path: p.path, PathType: &pt, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: p.svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}})
	}
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: a, CreationTimestamp: metav1.NewTime(born)},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: hp}}}}}}
}

func isoServiceObjs(ns, name string, port int, ready bool) (*corev1.Service, *discoveryv1.EndpointSlice) {
	p, pname := int32(port), "http"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &p}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	return svc, es
}

// isoFixture is tenant B, in its two states (1: B's change served), and
// what A's generator draws on: echo servers, certificates and hashes.
type isoFixture struct {
	compat  render.Compat // the annotation mode of the run
	class   *networkingv1.IngressClass
	b       [2]render.Inputs
	changed [2]*networkingv1.Ingress // b-open in each state
	aEchoes map[string]int           // A's Service name -> echo port
	closed  int                      // a loopback port nobody listens on
	aCert   [2][]byte                // A's certificate for b7.test, b1.test, *.test (O tenant-a), and key
	aCert2  [2][]byte                // another pair, for mismatched keys
	bcrypt  map[int]string           // "m4llory" hashed with each cost
}

func newIsoFixture(t *testing.T) *isoFixture {
	fx := &isoFixture{aEchoes: map[string]int{}, bcrypt: map[int]string{}}
	fx.class = &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "haproxy", Annotations: map[string]string{render.DefaultClassAnnotation: "true"}},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}
	var b render.Inputs
	for _, name := range []string{"b-web", "b-api", "b-canary"} {
		svc, es := isoServiceObjs(isoNSB, name, startAnnEcho(t, name, nil).port, true)
		b.Services, b.EndpointSlices = append(b.Services, svc), append(b.EndpointSlices, es)
	}
	for _, name := range []string{"a-one", "a-two", "a-imposter"} {
		fx.aEchoes[name] = startAnnEcho(t, name, nil).port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx.closed = ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	users := htpasswdSecret(t, "b-users") // alice (bcrypt) and bob (SHA-crypt)
	users.Namespace = isoNSB
	crt, key := testenv.SelfSigned(t, "b7.test", isoNSB)
	b.Secrets = append(b.Secrets, users, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: isoNSB, Name: "b-tls"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}})
	fx.aCert[0], fx.aCert[1] = testenv.SelfSigned(t, "b7.test", isoNSA)
	fx.aCert2[0], fx.aCert2[1] = testenv.SelfSigned(t, "b1.test", isoNSA)

	P, E := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	n := 0
	ing := func(name, host string, ann map[string]string, paths ...isoPath) *networkingv1.Ingress {
		n++
		return isoIngress(isoNSB, name, isoBorn.Add(time.Duration(n)*time.Minute), host, ann, paths...)
	}
	open := func(exactSvc string) *networkingv1.Ingress {
		return isoIngress(isoNSB, "b-open", isoBorn, "b1.test",
			map[string]string{"cors-enable": "true", "cors-allow-origin": "https://app.b.example"},
			isoPath{"/", P, "b-web"}, isoPath{"/api", P, "b-api"}, isoPath{"/exact", E, exactSvc})
	}
	fx.changed = [2]*networkingv1.Ingress{open("b-api"), open("b-web")}
	tlsIng := ing("b-tls", "b7.test", map[string]string{"hsts": "true"}, isoPath{"/", P, "b-web"})
	tlsIng.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"b7.test"}, SecretName: "b-tls"}}
	b.Ingresses = []*networkingv1.Ingress{
		ing("b-canary", "b1.test", map[string]string{"canary-by-header": "X-B-Canary"}, isoPath{"/api", P, "b-canary"}),
		ing("b-rewrite", "b1.test", map[string]string{"rewrite-target": "/v2"}, isoPath{"/rw", P, "b-api"}),
		ing("b-auth", "b2.test", map[string]string{"auth-basic-secret": "b-users", "auth-realm": "B realm"}, isoPath{"/", P, "b-web"}),
		ing("b-allow", "b3.test", map[string]string{"allowlist-source-range": "10.0.0.0/8"}, isoPath{"/", P, "b-web"}),
		ing("b-allow-open", "b3.test", map[string]string{"allowlist-source-range": "127.0.0.0/8", "denylist-source-range": "127.0.0.2"}, isoPath{"/open", P, "b-web"}),
		ing("b-rate", "b4.test", map[string]string{"rate-limit-rps": "1000", "rate-limit-connections": "100", "body-size-limit": "1k"}, isoPath{"/", P, "b-api"}),
		ing("b-redirect", "b5.test", map[string]string{"permanent-redirect": "https://new.b.example/"}, isoPath{"/", P, "b-web"}),
		ing("b-approot", "b6.test", map[string]string{"app-root": "/home"}, isoPath{"/", P, "b-web"}),
		tlsIng,
		ing("b-sslr", "b8.test", map[string]string{"ssl-redirect": "true", "ssl-redirect-code": "301"}, isoPath{"/", P, "b-api"}),
	}
	for state := range 2 {
		fx.b[state] = b
		fx.b[state].IngressClasses = []*networkingv1.IngressClass{fx.class}
		fx.b[state].Ingresses = append([]*networkingv1.Ingress{fx.changed[state]}, b.Ingresses...)
	}
	return fx
}

// bKey is a host, path and type B serves (canaries excluded).
type bKey struct {
	host, path string
	pt         networkingv1.PathType
}

func (fx *isoFixture) keys() []bKey {
	var out []bKey
	for _, ing := range fx.b[0].Ingresses {
		if ing.Name == "b-canary" {
			continue
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				out = append(out, bKey{r.Host, p.Path, *p.PathType})
			}
		}
	}
	return out
}

// bHosts are the hosts B serves.
func (fx *isoFixture) hosts() []string {
	var out []string
	for _, k := range fx.keys() {
		if !slices.Contains(out, k.host) {
			out = append(out, k.host)
		}
	}
	return out
}

// isoParams: the seed (ISOLATION_SEED, else from the clock), the most
// steps (ISOLATION_STEPS) and the time per annotation mode
// (ISOLATION_DURATION, 20s by default).
func isoParams(t *testing.T) (seed uint64, steps int, budget time.Duration) {
	seed, steps, budget = uint64(time.Now().UnixNano()), 1<<30, 20*time.Second
	if s := os.Getenv("ISOLATION_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ISOLATION_SEED: %v", err)
		}
		seed = v
	}
	if s := os.Getenv("ISOLATION_STEPS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("ISOLATION_STEPS: %v", err)
		}
		steps, budget = v, 24*time.Hour
	}
	if s := os.Getenv("ISOLATION_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("ISOLATION_DURATION: %v", err)
		}
		budget = d
	}
	return seed, steps, budget
}

func TestIsolation(t *testing.T) {
	seed, steps, budget := isoParams(t)
	t.Logf("seed %d (replay: ISOLATION_SEED=%d go test ./render -run TestIsolation)", seed, seed)
	for _, compat := range []render.Compat{render.CompatNone, render.CompatNginx} {
		name := "compat-" + string(compat)
		if compat == render.CompatNone {
			name = "compat-none"
		}
		t.Run(name, func(t *testing.T) { runIsolation(t, seed, compat, steps, budget) })
	}
}

func runIsolation(t *testing.T, seed uint64, compat render.Compat, maxSteps int, budget time.Duration) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	fx := newIsoFixture(t)
	fx.compat = compat
	for _, cost := range []int{4, 5, 6, 8} {
		fx.bcryptHash(t, cost)
	}
	reqs := isoRequests()
	opts := render.Options{AnnotationsCompat: compat, SettingsConfigMap: "kube-system/haproxy-sidecar"}
	var lbs []*isoLB
	for _, version := range slices.Sorted(maps.Keys(testenv.HAProxies(t))) {
		lbs = append(lbs, startIsoLB(t, version, testenv.HAProxies(t)[version], tmpl))
	}
	defer func() {
		if t.Failed() {
			for _, lb := range lbs {
				t.Logf("haproxy %s output (tail):\n%s", lb.version, lastLinesOf(lb.logs.String(), 20))
			}
		}
	}()
	// B alone, in both states, from the HAProxy instances the test then
	// reloads: the baseline. It is also what the request table says B
	// alone answers, or the comparison would prove nothing.
	base := make([][2][]isoAnswer, len(lbs))
	for _, state := range []int{1, 0} {
		for i, lb := range lbs {
			_, dir, _ := lb.render(t, fx.b[state], opts)
			if err := lb.serve(t, dir); err != nil {
				t.Fatalf("haproxy %s: B alone: %v", lb.version, err)
			}
			base[i][state] = lb.askAll(reqs)
			for j, r := range reqs {
				a := base[i][state][j]
				if a.brief() != r.wantFor(state) {
					t.Errorf("haproxy %s, B alone (state %d): %s: %s, want %s", lb.version, state, r.name, a, r.wantFor(state))
				} else if r.checkExtra != nil {
					if msg := r.checkExtra(a); msg != "" {
						t.Errorf("haproxy %s, B alone (state %d): %s: %s", lb.version, state, r.name, msg)
					}
				}
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, lb := range lbs {
		lb.bOnly = haproxycfg.NewIncremental(haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(lb.httpPort),
			HTTPSBind: "127.0.0.1:" + strconv.Itoa(lb.httpsPort)})
		lb.bOnlyDir = t.TempDir()
		if _, _, err := lb.bOnly.Render(fx.b[0], opts); err != nil {
			t.Fatal(err)
		}
	}

	a := newTenantA(seed, fx)
	state := 0
	start := time.Now()
	var log []string
	var takenRoute, takenTLS, takenCert, bChanges int
	var stats isoStats
	step := 0
	var slowest time.Duration
	for ; step < maxSteps && time.Since(start) < budget; step++ {
		stepStart := time.Now()
		bChange := step%5 == 4
		var what []string
		if bChange {
			state ^= 1
			bChanges++
			what = []string{fmt.Sprintf("B: b-open's Exact /exact now to %s", fx.changed[state].Spec.Rules[0].HTTP.Paths[2].Backend.Service.Name)}
		} else {
			what = a.step()
		}
		log = append(log, fmt.Sprintf("step %d: %s", step, strings.Join(what, "; ")))
		in := isoInputs(fx, state, a)
		fail := func(format string, args ...any) {
			t.Helper()
			sub := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
			t.Fatalf("seed %d step %d (%s; replay: ISOLATION_SEED=%d ISOLATION_STEPS=%d go test ./render -run 'TestIsolation/%s'): %s\nsteps:\n  %s\nA's objects:\n%s",
				seed, step, sub, seed, step+1, sub, fmt.Sprintf(format, args...),
				strings.Join(log[max(0, len(log)-12):], "\n  "), a.describe())
		}
		var wrong []string
		var first *isoWrong
		for i, lb := range lbs {
			_, dir, took := lb.render(t, in, opts)
			if bChange {
				isoCheckBChange(t, fail, fx, a, lb, dir, took, state, opts, &stats)
			}
			if err := lb.serve(t, dir); err != nil {
				fail("haproxy %s refused the configuration with A's objects, so B's routes are not updated: %v", lb.version, err)
			}
			// A's own traffic first, at once: wrong passwords against its
			// htpasswd Secrets, its canary headers. Whatever it costs
			// HAProxy must not change B's answers below.
			lb.askAll(a.requests())
			got := lb.askAll(reqs)
			for j, r := range reqs {
				rule := isoDocumented(fx, a, state, r)
				if got[j] != base[i][state][j] && isoAllowed(rule, r, base[i][state][j], got[j]) {
					switch rule {
					case "route":
						takenRoute++
					case "tls":
						takenTLS++
					case "cert":
						takenCert++
					}
				}
				if !isoAllowed(rule, r, base[i][state][j], got[j]) {
					how := "B alone answers"
					if rule != "" {
						how = "B alone answers (or, by isoDocumented's " + rule + " rule)"
					}
					wrong = append(wrong, fmt.Sprintf("haproxy %s: %s %s%s (%s): got %s;\n%s %s",
						lb.version, r.method, r.host, r.path, r.name, got[j], how, base[i][state][j]))
					if first == nil {
						first = &isoWrong{lb, r, base[i][state][j]}
					}
				}
			}
		}
		slowest = max(slowest, time.Since(stepStart))
		if first != nil {
			// Both versions are asked before failing, so that the report
			// says which show it; the first wrong answer is shrunk.
			small := isoShrink(t, fx, a, first.lb, state, opts, first.r, first.base)
			fail("%s\nthe fewest of A's objects found that still change the first (haproxy %s):\n%s",
				strings.Join(wrong, "\n"), first.lb.version, small.describe())
		}
	}
	t.Logf("%d steps in %v (%d changes of B, slowest step %v); answers A changed as isoDocumented allows: %d by a closer path, %d by a TLS entry, %d certificates",
		step, time.Since(start).Round(time.Millisecond), bChanges, slowest.Round(time.Millisecond), takenRoute, takenTLS, takenCert)
	t.Logf("B's changes, largest figures: Ingresses evaluated %d with A (%d of A's on the host or with a default backend), %d without; render %v with A, %v without; haproxy -c %v with A, %v without",
		stats.evalWith, stats.neighbours, stats.evalAlone, stats.renderWith, stats.renderAlone, stats.checkWith, stats.checkAlone)
	if step < 5 {
		t.Errorf("only %d steps within %v", step, budget)
	}
	// A deletes everything: B's answers are B alone's again, from the
	// same renderers and HAProxy processes.
	for i, lb := range lbs {
		_, dir, _ := lb.render(t, fx.b[state], opts)
		if err := lb.serve(t, dir); err != nil {
			t.Fatalf("haproxy %s: B alone again: %v", lb.version, err)
		}
		for j, got := range lb.askAll(reqs) {
			if got != base[i][state][j] {
				t.Errorf("haproxy %s, after A deleted everything: %s: %s, want %s", lb.version, reqs[j].name, got, base[i][state][j])
			}
		}
	}
}

// isoWrong is a wrong answer: the HAProxy, the request and B alone's answer.
type isoWrong struct {
	lb   *isoLB
	r    isoReq
	base isoAnswer
}

// isoStats are the largest figures of B's changes, for the log.
type isoStats struct {
	evalWith, evalAlone, neighbours int
	renderWith, renderAlone         time.Duration
	checkWith, checkAlone           time.Duration
}

// isoInputs are B's objects in state with A's.
func isoInputs(fx *isoFixture, state int, a *tenantA) render.Inputs {
	in := fx.b[state]
	aIn := a.inputs()
	in.Ingresses = append(slices.Clone(in.Ingresses), aIn.Ingresses...)
	in.Services = append(slices.Clone(in.Services), aIn.Services...)
	in.EndpointSlices = append(slices.Clone(in.EndpointSlices), aIn.EndpointSlices...)
	in.Secrets = append(slices.Clone(in.Secrets), aIn.Secrets...)
	// The settings: HAProxy's resolvers (A's ExternalName Services) ask
	// a closed loopback port, never the machine's nameserver.
	in.ConfigMaps = append(slices.Clone(aIn.ConfigMaps), isoSettings)
	return in
}

// isoSettings is the settings ConfigMap (opts.SettingsConfigMap) of every
// step.
var isoSettings = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "haproxy-sidecar"},
	Data: map[string]string{"dns-nameservers": "127.0.0.1:1"}}

// isoShrink removes A's objects one by one, keeping each removal after
// which request r still gets a wrong answer from lb: what is left is a
// small set of objects to report.
func isoShrink(t *testing.T, fx *isoFixture, a *tenantA, lb *isoLB, state int, opts render.Options, r isoReq, base isoAnswer) *tenantA {
	t.Helper()
	small := &tenantA{fx: fx, keys: a.keys, ings: maps.Clone(a.ings), svcs: maps.Clone(a.svcs), slices: maps.Clone(a.slices),
		secs: maps.Clone(a.secs), cms: maps.Clone(a.cms)}
	stillWrong := func() bool {
		_, dir, _ := lb.render(t, isoInputs(fx, state, small), opts)
		if err := lb.serve(t, dir); err != nil {
			return true
		}
		return !isoAllowed(isoDocumented(fx, small, state, r), r, base, lb.ask(r))
	}
	shrinkMap(small.ings, stillWrong)
	shrinkMap(small.secs, stillWrong)
	shrinkMap(small.svcs, stillWrong)
	shrinkMap(small.slices, stillWrong)
	shrinkMap(small.cms, stillWrong)
	return small
}

// isoCheckBChange checks the pass that rendered B's change with A present:
// only B's changed Ingress and the Ingresses sharing its host (or with a
// default backend) were evaluated again, more than without A only by A's
// Ingresses on that host; and its render and `haproxy -c` took at most a
// generous factor of the same change without A, plus a floor (render: 20
// times plus 500 ms; haproxy -c: 4 times plus 1.5 s). The machine is
// shared: only A's objects making B's change slow by orders of magnitude
// may fail this.
func isoCheckBChange(t *testing.T, fail func(string, ...any), fx *isoFixture, a *tenantA, lb *isoLB, dir string,
	took time.Duration, state int, opts render.Options, st *isoStats) {
	t.Helper()
	evalWith := lb.inc.EvaluatedIngresses()
	start := time.Now()
	_, out, err := lb.bOnly.Render(fx.b[state], opts)
	tookAlone := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	evalAlone := lb.bOnly.EvaluatedIngresses()
	host := fx.changed[state].Spec.Rules[0].Host
	neighbours := 0
	for _, ing := range a.ings {
		near := ing.Spec.DefaultBackend != nil
		for _, rule := range ing.Spec.Rules {
			// from-to-www-redirect's host is the rule's, with or
			// without "www.".
			near = near || rule.Host == host || rule.Host == "www."+host || "www."+rule.Host == host
		}
		// A server-alias host is served only where no rule takes it:
		// evaluated again when a rule of that host changes.
		for _, key := range []string{render.AnnotationPrefix + "server-alias", "nginx.ingress.kubernetes.io/server-alias"} {
			for alias := range strings.SplitSeq(ing.Annotations[key], ",") {
				near = near || strings.TrimSpace(alias) == host
			}
		}
		for _, tl := range ing.Spec.TLS {
			near = near || slices.Contains(tl.Hosts, host)
		}
		if near {
			neighbours++
		}
	}
	st.evalWith, st.evalAlone, st.neighbours = max(st.evalWith, evalWith), max(st.evalAlone, evalAlone), max(st.neighbours, neighbours)
	st.renderWith, st.renderAlone = max(st.renderWith, took), max(st.renderAlone, tookAlone)
	if evalWith > evalAlone+neighbours {
		fail("haproxy %s: B's change evaluated %d Ingresses again with A present, %d without A, and A has %d Ingresses on %s or with a default backend",
			lb.version, evalWith, evalAlone, neighbours, host)
	}
	if limit := 20*tookAlone + 500*time.Millisecond; took > limit {
		fail("haproxy %s: B's change rendered in %v with A present, %v without (limit %v)", lb.version, took, tookAlone, limit)
	}
	writeFiles(t, lb.bOnlyDir, out)
	check := func(path string) time.Duration {
		start := time.Now()
		// Bounded: a configuration that makes HAProxy spin (a hash of
		// unbounded cost) fails here instead of hanging the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := reload.Check(ctx, lb.bin, path); err != nil {
			fail("haproxy %s -c %s: %v", lb.version, path, err)
		}
		return time.Since(start)
	}
	alone := check(filepath.Join(lb.bOnlyDir, haproxycfg.ConfigFile))
	with := check(filepath.Join(dir, haproxycfg.ConfigFile))
	// Another process on the machine can stall one run: over the
	// limit, both are measured twice more, and the fastest runs compared.
	for range 2 {
		if with <= 4*alone+1500*time.Millisecond {
			break
		}
		alone = min(alone, check(filepath.Join(lb.bOnlyDir, haproxycfg.ConfigFile)))
		with = min(with, check(filepath.Join(dir, haproxycfg.ConfigFile)))
	}
	st.checkWith, st.checkAlone = max(st.checkWith, with), max(st.checkAlone, alone)
	if limit := 4*alone + 1500*time.Millisecond; with > limit {
		fail("haproxy %s -c of B's change took %v with A present, %v without (limit %v)", lb.version, with, alone, limit)
	}
}

// isoTail keeps the last 64 KiB written to it: HAProxy logs every
// request, and a long run sends many.
type isoTail struct {
	mu  sync.Mutex
	buf []byte
}

func (w *isoTail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if n := len(w.buf) - 64<<10; n > 0 {
		w.buf = append(w.buf[:0], w.buf[n:]...)
	}
	return len(p), nil
}

func (w *isoTail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// shrinkMap deletes each entry of m, in key order, that stillWrong does
// not need: the failure must remain without it.
func shrinkMap[V any](m map[string]V, stillWrong func() bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if delete(m, k); !stillWrong() {
			m[k] = v
		}
	}
}
