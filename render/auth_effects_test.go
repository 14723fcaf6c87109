package render_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Hashes made with libxcrypt and OpenSSL (the command beside each), of the
// password after the colon: inputs of the scheme test.
var schemeUsers = []struct{ user, password, hash string }{
	{"md5", "pw-md5", "$1$md5salt1$b17e6T8BlUk9jPEqYLl8K1"},                                                                                      // openssl passwd -1 -salt md5salt1
	{"sha256", "pw-sha256", "$5$sha256salt$UMUo/crzSmFSLaxjDsGTQQgr1W1zrycKs9W7Nmt4hH3"},                                                         // openssl passwd -5 -salt sha256salt
	{"sha512", "pw-sha512", "$6$sha512salt$yqkbL/Tp4ZRTzRiFlNsJITyd2nLRXPYyZstRHc0WCYVoLkB1MBMVS8pqT3i5vre2fdnMf5tV7W6pcc5Rpyn2k/"},              // openssl passwd -6 -salt sha512salt
	{"sha5000", "pw-sha5000", "$6$rounds=5000$roundsalt$rQUUq5Jl8n/RZ34gRAdXsWE8Nhget0xjlp.tnrj.25p/5pXV..U/BlVTogxRuFVW7rmzBZlKk7EmQB4HEIepI1"}, // crypt(3) with $6$rounds=5000$roundsalt
	{"yes1", "pw-yes1", "$y$j75$hKAxoeUghYrflYy604H.X.$ifEnnSg7m4q9HO4NSvEhv7zek0Btc.7bfpG/ddneDn8"},                                             // mkpasswd -m yescrypt -R 1
	{"yes2", "pw-yes2", "$y$j85$g2u/PQkzrEgmneGXFxmj00$uvIg8ay8Lb4UbDn2bjcKmdBanM8Q4NngEQPSdtwi1m2"},                                             // mkpasswd -m yescrypt -R 2
}

// aprUser is Apache MD5 (openssl passwd -apr1 -salt aprsalt1 pw-apr1), what
// htpasswd writes by default: HAProxy's crypt(3) cannot check it.
const aprHash = "$apr1$aprsalt1$g5sqJqRCwQa7xZQRtbeOH1"

// userlistCheck runs haproxy -c on a configuration with one userlist user
// and returns how long it took and whether HAProxy accepted it.
func userlistCheck(t *testing.T, bin, hash string) (time.Duration, bool, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "u.cfg")
	text := "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nuserlist u\n    user a password " + hash +
		"\n\nfrontend f\n    bind 127.0.0.1:1\n    http-request auth unless { http_auth(u) }\n    default_backend b\n\nbackend b\n    server s 127.0.0.1:1\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "-c", "-q", "-f", cfg).CombinedOutput()
	return time.Since(start), err == nil, string(out)
}

// What the parser accepts, HAProxy accepts; Apache MD5 HAProxy's crypt(3)
// does not compute (the right password is refused), on both versions.
func TestAcceptedHashesPassHAProxyCheck(t *testing.T) {
	for version, bin := range testenv.HAProxies(t) {
		t.Run(version, func(t *testing.T) {
			hashes := render.AcceptedHashes()
			for _, u := range schemeUsers {
				hashes = append(hashes, u.hash)
			}
			for _, h := range hashes {
				if _, ok, out := userlistCheck(t, bin, h); !ok {
					t.Errorf("%s: haproxy -c refuses it: %s", h, out)
				}
			}
			// HAProxy only checks that crypt(3) returns something, and
			// libxcrypt returns a failure token for a scheme it does not
			// know: the check passes, and no password ever matches.
			port := freePort(t)
			cfg := filepath.Join(t.TempDir(), "apr.cfg")
			text := "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nuserlist u\n" +
				"    user apache password " + aprHash + "\n    user md5 password " + schemeUsers[0].hash +
				"\n\nfrontend f\n    bind 127.0.0.1:" + strconv.Itoa(port) + "\n    http-request auth unless { http_auth(u) }\n    http-request return status 200\n"
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			startHAProxy(t, bin, cfg, port)
			c := newAuthClient(port, "127.0.0.1")
			c.expect(t, "x.test", basic("md5", schemeUsers[0].password), 200)
			c.expect(t, "x.test", basic("apache", "pw-apr1"), 401)
		})
	}
}

// authSite is an Ingress for host on its own Service and echo endpoint,
// with annotations.
func authSite(t *testing.T, in *render.Inputs, host string, ann map[string]string) {
	t.Helper()
	e := startAnnEcho(t, host, nil)
	cls, pt := "haproxy", networkingv1.PathTypePrefix
	svc := strings.ReplaceAll(strings.TrimSuffix(host, ".test"), ".", "-")
	port, pname, ready := int32(e.port), "http", true
	in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	})
	in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc, Annotations: ann,
		CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, len(in.Ingresses), 0, 0, time.UTC))},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
}

// authClient sends requests to HAProxy's port from a loopback address of
// its own (HAProxy counts failures per client address), over keep-alive
// connections.
type authClient struct {
	hc   *http.Client
	port int
}

func newAuthClient(port int, from string) *authClient {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second,
		// Without IP_BIND_ADDRESS_NO_PORT, binding the source address
		// reserves a port for good: the flood's connections, in
		// TIME_WAIT for a minute, then left HAProxy too few ephemeral
		// ports to connect to the next test's endpoints (503 SC--).
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1) })
			if err != nil {
				return err
			}
			return serr
		}}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	}, MaxIdleConnsPerHost: 4}
	return &authClient{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}, port: port}
}

// get returns the status of GET http://host/ with the header set, or an
// error.
func (c *authClient) get(host string, header map[string]string) (int, error) {
	req, err := http.NewRequest("GET", "http://"+host+"/", nil)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (c *authClient) expect(t *testing.T, host string, header map[string]string, want int) {
	t.Helper()
	got, err := c.get(host, header)
	if err != nil || got != want {
		t.Errorf("GET %s: %d %v, want %d", host, got, err, want)
	}
}

// poller requests an unrelated host every 20 ms on fresh connections and
// keeps every latency and failure, until stopped.
type poller struct {
	mu        sync.Mutex
	latencies []time.Duration
	failures  []string
	stop      chan struct{}
	done      chan struct{}
}

func startPoller(port int, host string) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	c := newAuthClient(port, "127.0.0.9")
	c.hc.Transport.(*http.Transport).DisableKeepAlives = true
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			code, err := c.get(host, nil)
			p.mu.Lock()
			p.latencies = append(p.latencies, time.Since(start))
			if err != nil || code != 200 {
				p.failures = append(p.failures, strconv.Itoa(code)+" "+errString(err))
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// mark returns how many requests the poller has made so far.
func (p *poller) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.latencies)
}

// since returns the latencies from mark on, sorted, and all failures.
func (p *poller) since(mark int) ([]time.Duration, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := slices.Clone(p.latencies[mark:])
	slices.Sort(l)
	return l, slices.Clone(p.failures)
}

func (p *poller) finish() {
	close(p.stop)
	<-p.done
}

// Costly hashes never reach HAProxy, a wrong-password flood against the
// most costly hash allowed is cut off after AuthMaxFailures, and an
// unrelated host keeps serving throughout, on both versions.
func TestAuthBoundsThroughHAProxy(t *testing.T) {
	bcrypt5, err := bcrypt.GenerateFromPassword([]byte("s3cret"), 5)
	if err != nil {
		t.Fatal(err)
	}
	var schemes strings.Builder
	for _, u := range schemeUsers {
		schemes.WriteString(u.user + ":" + u.hash + "\n")
	}
	schemes.WriteString("apache:" + aprHash + "\n")
	secret := func(name, file string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Data: map[string][]byte{"auth": []byte(file)}}
	}
	costlyBcrypt, _ := bcrypt.GenerateFromPassword([]byte("x"), 4)
	bcrypt31 := "$2y$31$" + string(costlyBcrypt[7:])
	sha999 := "$6$rounds=999999999$sha512salt$yqkbL/Tp4ZRTzRiFlNsJITyd2nLRXPYyZstRHc0WCYVoLkB1MBMVS8pqT3i5vre2fdnMf5tV7W6pcc5Rpyn2k/"
	in := render.Inputs{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
		Secrets: []*corev1.Secret{
			secret("flood", "alice:"+string(bcrypt5)+"\n"),
			secret("schemes", schemes.String()),
			secret("costly-bcrypt", "mallory:"+bcrypt31+"\n"),
			secret("costly-sha", "mallory:"+sha999+"\n"),
		},
	}
	authSite(t, &in, "free.test", nil)
	authSite(t, &in, "flood.test", map[string]string{render.AnnotationPrefix + "auth-basic-secret": "flood"})
	authSite(t, &in, "schemes.test", map[string]string{render.AnnotationPrefix + "auth-basic-secret": "schemes"})
	authSite(t, &in, "bcrypt31.test", map[string]string{render.AnnotationPrefix + "auth-basic-secret": "costly-bcrypt"})
	authSite(t, &in, "sha999.test", map[string]string{render.AnnotationPrefix + "auth-basic-secret": "costly-sha"})
	port := freePort(t)
	m := render.BuildModel(in, render.Options{})
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(port), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := out.Get(haproxycfg.ConfigFile)
	// Reported: each costly user by Secret, name and line, never by hash.
	var reasons []string
	for _, p := range m.Problems {
		reasons = append(reasons, p.Name+":"+string(p.Reason))
		if strings.Contains(p.Message, "$2y$31$") || strings.Contains(p.Message, "rounds=999999999$") || strings.Contains(p.Message, "aprsalt1") {
			t.Errorf("a problem quotes a hash: %s", p.Report())
		}
		if p.Reason == render.AuthHashTooCostly && !strings.Contains(p.Message, "mallory (line 1") {
			t.Errorf("problem does not name the user and line: %s", p.Report())
		}
	}
	slices.Sort(reasons)
	want := []string{"bcrypt31:AuthHashTooCostly", "schemes:AuthHashUnsupported", "sha999:AuthHashTooCostly"}
	if !slices.Equal(reasons, want) {
		t.Errorf("problems %v, want %v", reasons, want)
	}
	if strings.Contains(string(cfg), "$2y$31$") || strings.Contains(string(cfg), "rounds=999999999") || strings.Contains(string(cfg), aprHash) {
		t.Errorf("a refused hash reached haproxy.cfg")
	}
	// The password is checked once per request: http_auth() appears once
	// per userlist, stored in txn.auth, never in an ACL used twice.
	if n := strings.Count(string(cfg), "http_auth("); n != 4 {
		t.Errorf("http_auth appears %d times for 4 routes with authentication:\n%s", n, cfg)
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			start := time.Now()
			if out, err := exec.Command(bin, "-c", "-q", "-f", filepath.Join(dir, haproxycfg.ConfigFile)).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			// Without the limits this check ran for days; its users
			// cost a few milliseconds now. The bound only tells a
			// regression apart on a loaded machine.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("haproxy -c took %v", d)
			}
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), port)
			poll := startPoller(port, "free.test")
			defer poll.finish()

			// Every accepted scheme checks its password; Apache MD5 is
			// left out; the costly users' routes answer 401.
			c := newAuthClient(port, "127.0.0.2")
			for _, u := range schemeUsers {
				c.expect(t, "schemes.test", basic(u.user, u.password), 200)
			}
			c.expect(t, "schemes.test", basic("apache", "pw-apr1"), 401)
			c.expect(t, "bcrypt31.test", basic("mallory", "x"), 401)
			c.expect(t, "sha999.test", basic("mallory", "pw-sha512"), 401)

			// A browser's first requests carry no credentials: a
			// challenge each, no failure counted.
			b := newAuthClient(port, "127.0.0.3")
			for range AuthMaxFailures * 2 {
				b.expect(t, "flood.test", nil, 401)
			}
			b.expect(t, "flood.test", basic("alice", "s3cret"), 200)

			// 16 clients from one address send wrong passwords as fast
			// as they can for 10 s, from a process of their own, so that
			// the poller's latencies are not its own scheduling delays.
			mark := poll.mark()
			flood := startFlood(t, port, "flood.test", "127.0.0.4", 16, 10*time.Second)
			// During the flood: the right password from another
			// address is served, from the flooding address it is not.
			time.Sleep(2 * time.Second)
			c.expect(t, "flood.test", basic("alice", "s3cret"), 200)
			newAuthClient(port, "127.0.0.4").expect(t, "flood.test", basic("alice", "s3cret"), 429)
			statuses, errs := flood()
			lat, failures := poll.since(mark)
			t.Logf("flood: %v (errors %v); unrelated host: %d requests, p50 %v, p99 %v, max %v", statuses, errs, len(lat),
				lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
			if statuses[401] > haproxycfg.AuthMaxFailures+16 || statuses[429] == 0 {
				t.Errorf("flood answers %v: want at most %d 401s (the limit plus the requests in flight), then 429s", statuses, haproxycfg.AuthMaxFailures+16)
			}
			for code := range statuses {
				if code != 401 && code != 429 {
					t.Errorf("flood got %d answers %d (errors %v)", statuses[code], code, errs)
				}
			}
			if len(failures) > 0 {
				t.Errorf("unrelated host failed %d times: %v", len(failures), failures)
			}
			if len(lat) < 50 {
				t.Errorf("unrelated host polled only %d times during the flood", len(lat))
			} else if p99 := lat[len(lat)*99/100]; p99 > 100*time.Millisecond {
				t.Errorf("unrelated host p99 %v during the flood, want within 100ms", p99)
			}
		})
	}
}

// startFlood runs this test binary again as a flooding client (see
// TestMain): clients connections from address from sending GET / to host
// with a wrong password, each as fast as it can, for d. The function it
// returns waits for the end and returns how many answers of each status
// came (0: an error) and the first errors.
func startFlood(t *testing.T, port int, host, from string, clients int, d time.Duration) func() (map[int]int, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HSC_AUTH_FLOOD="+strings.Join([]string{strconv.Itoa(port), host, from, strconv.Itoa(clients), d.String()}, ","))
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() (map[int]int, []string) {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("flooding client: %v\n%s", err, stderr.String())
		}
		var r floodResult
		if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
			t.Fatalf("flooding client's result %q: %v", out.String(), err)
		}
		return r.Statuses, r.Errors
	}
}

type floodResult struct {
	Statuses map[int]int
	Errors   []string
}

// flood is the flooding client's side of startFlood.
func flood(spec string) {
	f := strings.Split(spec, ",")
	port, _ := strconv.Atoi(f[0])
	clients, _ := strconv.Atoi(f[3])
	d, _ := time.ParseDuration(f[4])
	c := newAuthClient(port, f[2])
	c.hc.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	var mu sync.Mutex
	r := floodResult{Statuses: map[int]int{}}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(end) && n < 1_000_000; n++ {
				code, err := c.get(f[1], basic("alice", "wrong"+strconv.Itoa(i)))
				mu.Lock()
				r.Statuses[code]++
				if err != nil && len(r.Errors) < 5 {
					r.Errors = append(r.Errors, err.Error())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(r)
}

func TestMain(m *testing.M) {
	if spec := os.Getenv("HSC_AUTH_FLOOD"); spec != "" {
		flood(spec)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h),
// which package syscall does not define.
const ipBindAddressNoPort = 24

// AuthMaxFailures is render's, short.
const AuthMaxFailures = haproxycfg.AuthMaxFailures

// The failure limit counts per client address as the trusted-proxies
// setting decides it: behind a trusted proxy, X-Forwarded-For's clients
// each have their own 10 failures; from an untrusted one, the header is
// not believed and they share the connection's.
func TestAuthFailureLimitPerTrustedClient(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, trusted := range []string{"127.0.0.0/8", "10.0.0.1"} {
		t.Run("trusted-proxies "+trusted, func(t *testing.T) {
			in := render.Inputs{
				IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
					Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}},
				ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lb"},
					Data: map[string]string{"trusted-proxies": trusted}}},
				Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "users"},
					Data: map[string][]byte{"auth": []byte("alice:" + string(hash) + "\n")}}},
			}
			authSite(t, &in, "login.test", map[string]string{render.AnnotationPrefix + "auth-basic-secret": "users"})
			m := render.BuildModel(in, render.Options{SettingsConfigMap: "default/lb"})
			if len(m.Problems) > 0 {
				t.Fatalf("problems: %v", m.Problems)
			}
			port := freePort(t)
			tmpl, err := templates.Load("")
			if err != nil {
				t.Fatal(err)
			}
			out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(port), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFiles(t, dir, out)
			for version, bin := range testenv.HAProxies(t) {
				t.Run("haproxy-"+version, func(t *testing.T) {
					startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), port)
					c := newAuthClient(port, "127.0.0.5")
					as := func(client, password string) map[string]string {
						h := basic("alice", password)
						h["X-Forwarded-For"] = client
						return h
					}
					for range AuthMaxFailures {
						c.expect(t, "login.test", as("192.0.2.1", "wrong"), 401)
					}
					c.expect(t, "login.test", as("192.0.2.1", "s3cret"), 429)
					if trusted == "127.0.0.0/8" {
						c.expect(t, "login.test", as("192.0.2.2", "s3cret"), 200)
						c.expect(t, "login.test", as("192.0.2.2", "wrong"), 401)
					} else {
						c.expect(t, "login.test", as("192.0.2.2", "s3cret"), 429)
					}
				})
			}
		})
	}
}
