package render_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// request is one row of a routing table: what a client sends and what it
// must get back.
type request struct {
	https bool
	host  string // Host header; also the SNI name (without port) for HTTPS
	path  string
	// want is "svc:<namespace>/<name>" for the Service that must answer,
	// "status:<code>" for an answer from HAProxy itself, or
	// "redirect:<location>" for a 308.
	want string
	// cert is the certificate CN expected for HTTPS.
	cert string
}

// runRouting renders a testdata case with its Services' endpoints replaced
// by local echo servers, starts every supported HAProxy on loopback and
// checks each request.
func runRouting(t *testing.T, caseName string, reqs []request) {
	t.Helper()
	runRoutingWith(t, caseName, nil, reqs)
}

// runRoutingWith is runRouting with a change to the case's objects first.
func runRoutingWith(t *testing.T, caseName string, change func(*render.Inputs), reqs []request) {
	t.Helper()
	in, _, err := manifest.Load(filepath.Join("..", "testdata", caseName, "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&in)
	}
	pointAtEchoServers(t, &in)
	httpPort, httpsPort := freePort(t), freePort(t)
	m, out, _ := renderInputs(t, in, haproxycfg.Config{
		HTTPBind:  "127.0.0.1:" + strconv.Itoa(httpPort),
		HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort),
	}, nil)
	dir := t.TempDir()
	writeFiles(t, dir, out)

	// explain must predict every answer HAProxy gives below.
	for _, r := range reqs {
		got, cert := explained(t, m, out, r)
		if got != r.want {
			t.Errorf("explain %s: predicts %s, want %s\n%s", r, got, r.want, m.Explain(r.render()))
		}
		if r.cert != "" && cert != r.cert {
			t.Errorf("explain %s: predicts certificate %q, want %q", r, cert, r.cert)
		}
	}

	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
			c := newClient(httpPort, httpsPort)
			for _, r := range reqs {
				got, cert := c.do(t, r)
				if got != r.want {
					t.Errorf("%s: got %s, want %s", r, got, r.want)
				}
				if r.cert != "" && cert != r.cert {
					t.Errorf("%s: certificate %q, want %q", r, cert, r.cert)
				}
			}
		})
	}
}

func (r request) render() render.Request {
	path, query, _ := strings.Cut(r.path, "?")
	return render.Request{HTTPS: r.https, Host: r.host, Path: path, Query: query}
}

// explained is what Model.Explain predicts for a request, in the form of
// request.want, and the common name of the certificate it predicts.
func explained(t *testing.T, m *render.Model, out *haproxycfg.Output, r request) (got, certCN string) {
	t.Helper()
	e := m.Explain(r.render())
	switch e.Answer {
	case render.AnswerServers:
		got = "svc:" + e.BackendInfo.Namespace + "/" + e.BackendInfo.Service
	case render.AnswerRedirect:
		got = "redirect:" + e.Location
	case render.AnswerUnavailable:
		got = "status:503"
	case render.AnswerNotFound:
		got = "status:404"
	}
	if r.https {
		pemData := out.Get(render.DefaultCertFile)
		if !e.DefaultCert {
			pemData = e.Cert.PEM
		}
		certCN = commonName(t, pemData)
	}
	return got, certCN
}

func commonName(t *testing.T, data []byte) string {
	t.Helper()
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			t.Fatal("no certificate in PEM data")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c.Subject.CommonName
		}
	}
}

func (r request) String() string {
	scheme := "http"
	if r.https {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, r.host, r.path)
}

// pointAtEchoServers starts one echo server per Service and rewrites the
// ready endpoints of its EndpointSlices to it, so that the Service that
// answers a request is visible in the response.
func pointAtEchoServers(t *testing.T, in *render.Inputs) {
	t.Helper()
	ports := map[string]int32{}
	for _, s := range in.Services {
		key := s.Namespace + "/" + s.Name
		ports[key] = int32(startEcho(t, key))
	}
	for _, es := range in.EndpointSlices {
		port, ok := ports[es.Namespace+"/"+es.Labels["kubernetes.io/service-name"]]
		if !ok {
			continue
		}
		for i := range es.Ports {
			es.Ports[i].Port = &port
		}
		for i := range es.Endpoints {
			for j := range es.Endpoints[i].Addresses {
				es.Endpoints[i].Addresses[j] = "127.0.0.1"
			}
		}
	}
}

// startEcho serves "svc:<name>" on a free loopback port.
func startEcho(t testing.TB, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		io.WriteString(w, "svc:"+name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func freePort(t *testing.T) int { return testenv.FreePort(t) }

// startHAProxy is testenv.StartHAProxy.
func startHAProxy(t testing.TB, bin, cfg string, port int) *testenv.LockedBuffer {
	return testenv.StartHAProxy(t, bin, cfg, port)
}

type client struct {
	httpPort, httpsPort int
}

func newClient(httpPort, httpsPort int) *client {
	return &client{httpPort: httpPort, httpsPort: httpsPort}
}

// do sends one request over a fresh connection to HAProxy on loopback,
// whatever the Host, and describes the answer the way request.want does.
func (c *client) do(t *testing.T, r request) (got, certCN string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	port := c.httpPort
	if r.https {
		port = c.httpsPort
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if r.https {
		sni, _, err := net.SplitHostPort(r.host)
		if err != nil {
			sni = r.host
		}
		tc := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatalf("%s: TLS handshake: %v", r, err)
		}
		certCN = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		conn = tc
	}
	req := "GET " + r.path + " HTTP/1.1\r\nHost: " + r.host + "\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: reading response: %v", r, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusPermanentRedirect:
		return "redirect:" + resp.Header.Get("Location"), certCN
	case resp.StatusCode == 200 && strings.HasPrefix(string(body), "svc:"):
		return string(body), certCN
	default:
		return "status:" + strconv.Itoa(resp.StatusCode), certCN
	}
}

// The routing examples table of the Kubernetes Ingress documentation, one
// host per row ("No" rows fall through to spec.defaultBackend).
func TestRoutingKubernetesDocExamples(t *testing.T) {
	const def = "svc:default/default-backend"
	h := func(row, path, want string) request {
		if want != def {
			want = "svc:default/" + want
		}
		return request{host: row + ".docs.example", path: path, want: want}
	}
	runRouting(t, "k8s-docs", []request{
		h("r01", "/", "r01-prefix-root"),
		h("r01", "/anything/at/all", "r01-prefix-root"),
		h("r02", "/foo", "r02-exact-foo"),
		h("r02", "/foo?query=string", "r02-exact-foo"),
		h("r02", "/bar", def),
		h("r02", "/foo/", def),
		h("r02", "/FOO", def),
		h("r05", "/foo", def),
		h("r05", "/foo/", "r05-exact-foo-slash"),
		h("r06", "/foo", "r06-prefix-foo"),
		h("r06", "/foo/", "r06-prefix-foo"),
		h("r06", "/foobar", def),
		h("r07", "/foo", "r07-prefix-foo-slash"),
		h("r07", "/foo/", "r07-prefix-foo-slash"),
		h("r08", "/aaa/bbb", def),
		h("r09", "/aaa/bbb", "r09-prefix-aaa-bbb"),
		h("r09", "/aaa/bbb/", "r09-prefix-aaa-bbb"),
		h("r09", "/aaa/bbb/ccc", "r09-prefix-aaa-bbb"),
		h("r09", "/aaa/bbbxyz", def),
		h("r10", "/aaa/bbb", "r10-prefix-aaa-bbb-slash"),
		h("r14", "/aaa/ccc", "r14-prefix-aaa"),
		h("r15", "/aaa/bbb", "r15-prefix-aaa-bbb"),
		h("r15", "/aaa/bbb/x", "r15-prefix-aaa-bbb"),
		h("r15", "/aaa/b", "r15-prefix-aaa"),
		h("r15", "/ccc", "r15-prefix-root"),
		h("r17", "/ccc", def),
		h("r18", "/foo", "r18-exact-foo"),
		h("r18", "/foo/", "r18-prefix-foo"),
		h("r18", "/foo/x", "r18-prefix-foo"),
		{host: "unknown.example", path: "/", want: def},
	})
}

func TestRoutingHosts(t *testing.T) {
	const defCert = "haproxy-sidecar default certificate"
	runRouting(t, "hosts", []request{
		// TLS hosts redirect plain HTTP, keeping path and query.
		{host: "foo.example.com", path: "/x?a=1", want: "redirect:https://foo.example.com/x?a=1"},
		{host: "bar.example.com", path: "/", want: "redirect:https://bar.example.com/"},
		// Neither the port nor the case of the Host header is kept: the
		// port was the HTTP one, and https://x.example.com:80/ fails.
		{host: "FOO.Example.com:8080", path: "/a%20b?q", want: "redirect:https://foo.example.com/a%20b?q"},
		{host: "x.Example.com:80", path: "/", want: "redirect:https://x.example.com/"},
		// Exact host; case and port in Host do not matter.
		{https: true, host: "foo.example.com", path: "/x", want: "svc:default/foo", cert: "foo.example.com"},
		{https: true, host: "FOO.Example.COM:443", path: "/exact", want: "svc:default/foo-exact", cert: "foo.example.com"},
		{https: true, host: "foo.example.com", path: "/exact/", want: "svc:default/foo"},
		// Wildcard: exactly one extra label; SNI picks the wildcard certificate.
		{https: true, host: "bar.example.com", path: "/", want: "svc:default/wild", cert: "*.example.com"},
		{https: true, host: "bar.example.com", path: "/api/v1", want: "svc:default/wild-api", cert: "*.example.com"},
		{https: true, host: "a.b.example.com", path: "/api", want: "svc:default/any-api", cert: defCert},
		{https: true, host: "a.b.example.com", path: "/", want: "status:404"},
		{host: "example.com", path: "/api", want: "svc:default/any-api"},
		// An exact host wins over the wildcard, and falls through to it
		// and then to rules without host when none of its paths match.
		{https: true, host: "only.example.com", path: "/only", want: "svc:default/only", cert: "*.example.com"},
		{https: true, host: "only.example.com", path: "/api", want: "svc:default/wild-api"},
		{https: true, host: "only.example.com", path: "/zzz", want: "svc:default/wild"},
		// A host without TLS is served over plain HTTP.
		{host: "plain.test", path: "/x", want: "svc:default/plain"},
		{host: "plain.test", path: "/api", want: "svc:default/plain"},
		// Rules without host serve every other host.
		{host: "unknown.test", path: "/api/x", want: "svc:default/any-api"},
		{host: "unknown.test", path: "/common", want: "svc:default/any-common"},
		{host: "unknown.test", path: "/", want: "status:404"},
		{https: true, host: "unknown.test", path: "/api", want: "svc:default/any-api", cert: defCert},
		// A TLS entry without hosts: its certificate's own names select it,
		// wildcard name included, and plain HTTP is not redirected.
		{https: true, host: "names.example.org", path: "/", want: "svc:default/plain", cert: "names.example.org"},
		{https: true, host: "x.names.example.org", path: "/api", want: "svc:default/any-api", cert: "names.example.org"},
		{https: true, host: "x.y.names.example.org", path: "/api", want: "svc:default/any-api", cert: defCert},
		{host: "names.example.org", path: "/", want: "svc:default/plain"},
	})
}

// https-redirect-port puts the port clients use for HTTPS in redirects.
func TestRoutingRedirectPort(t *testing.T) {
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "haproxy-sidecar"},
		Data: map[string]string{"https-redirect-port": "8443"}}
	runRoutingWith(t, "hosts", func(in *render.Inputs) { in.ConfigMaps = append(in.ConfigMaps, settings) }, []request{
		{host: "foo.example.com:80", path: "/x?a=1", want: "redirect:https://foo.example.com:8443/x?a=1"},
		{host: "Bar.Example.com", path: "/", want: "redirect:https://bar.example.com:8443/"},
		{host: "plain.test", path: "/x", want: "svc:default/plain"},
	})
}

func TestRoutingConflicts(t *testing.T) {
	runRouting(t, "conflicts", []request{
		// Two Ingresses in different namespaces share a host: paths merge,
		// and the older one wins the path both claim.
		{https: true, host: "shared.example.com", path: "/shared", want: "svc:team-a/older-exact", cert: "foo.example.com"},
		{https: true, host: "shared.example.com", path: "/shared/x", want: "svc:team-a/older"},
		{https: true, host: "shared.example.com", path: "/newer", want: "svc:default/newer"},
		{host: "shared.example.com", path: "/newer", want: "redirect:https://shared.example.com/newer"},
		// Same creation time: first by namespace/name wins.
		{host: "tie.example.com", path: "/", want: "svc:default/tie-a"},
		// The oldest Ingress's spec.defaultBackend serves unmatched requests.
		{host: "nothing.example", path: "/", want: "svc:team-a/older"},
	})
}

func TestRoutingClasses(t *testing.T) {
	runRouting(t, "classes", []request{
		{host: "field.example", path: "/", want: "svc:default/web"},
		{host: "annotation.example", path: "/", want: "svc:default/web"},
		{host: "other-field.example", path: "/", want: "status:404"},
		{host: "other-annotation.example", path: "/", want: "status:404"},
		{host: "missing.example", path: "/", want: "status:404"},
		// The default class belongs to another controller.
		{host: "noclass.example", path: "/", want: "status:404"},
	})
}

// Every invalid thing is skipped on its own; the rest of the same Ingress
// keeps working, and references that cannot be served answer 503.
func TestRoutingBadInput(t *testing.T) {
	runRouting(t, "bad-input", []request{
		{https: true, host: "good.example", path: "/ok", want: "svc:default/web", cert: "foo.example.com"},
		{https: true, host: "good.example", path: "/also-ok/x", want: "svc:default/web"},
		{https: true, host: "good.example", path: "/cost$x", want: "svc:default/web"},
		{https: true, host: "good.example", path: "/nope", want: "status:404"},
		{https: true, host: "good.example", path: "/regex", want: "status:404"},
		{https: true, host: "good.example", path: "/resource", want: "status:404"},
		{https: true, host: "good.example", path: "/bad-service-name", want: "status:404"},
		{https: true, host: "good.example", path: "/injected-service", want: "status:404"},
		{https: true, host: "good.example", path: "/missing-port", want: "status:503"},
		{https: true, host: "good.example", path: "/missing-port-name", want: "status:503"},
		{https: true, host: "good.example", path: "/missing-service", want: "status:503"},
		{https: true, host: "good.example", path: "/no-endpoints", want: "status:503"},
		{https: true, host: "good.example", path: "/external", want: "status:503"},
		{host: "second-good.example", path: "/", want: "svc:default/web"},
		{host: "upper.example", path: "/", want: "status:404"},
		{host: "1.2.3.4", path: "/", want: "status:404"},
		// A broken TLS Secret drops only its TLS entry: the host is served
		// over plain HTTP and HTTPS gets the default certificate.
		{host: "mismatch.example", path: "/", want: "svc:default/web"},
		{https: true, host: "mismatch.example", path: "/", want: "svc:default/web", cert: "haproxy-sidecar default certificate"},
		{https: true, host: "tls-ok.example", path: "/", want: "status:404", cert: "other.example.com"},
	})
}
