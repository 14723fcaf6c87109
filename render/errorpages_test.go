package render_test

import (
	"context"
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
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serveLoopback serves h on a free loopback port.
func serveLoopback(t *testing.T, h http.HandlerFunc) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCustomHTTPErrors: through HAProxy 2.6 and 3.0, under both prefixes,
// an endpoint's response with a listed status is replaced by the page the
// default-backend Service answers, with ingress-nginx's headers, the
// status kept and the page's Content-Type; other statuses pass; an error
// Service without endpoints leaves the endpoint's response.
func TestCustomHTTPErrors(t *testing.T) {
	app := serveLoopback(t, func(w http.ResponseWriter, r *http.Request) {
		code := 200
		switch r.URL.Path {
		case "/missing":
			code = 404
		case "/down":
			code = 503
		case "/teapot":
			code = 418
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		fmt.Fprintf(w, "app %d id=%s", code, r.Header.Get("X-Request-ID"))
	})
	pages := serveLoopback(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.Header.Get("X-Code"))
		var b strings.Builder
		b.WriteString("page " + r.Method + " " + r.URL.Path)
		for _, h := range []string{"X-Code", "X-Format", "X-Original-URI", "X-Namespace", "X-Ingress-Name", "X-Service-Name", "X-Service-Port", "X-Request-ID"} {
			b.WriteString("\n" + h + "=" + r.Header.Get(h))
		}
		w.Header().Set("Content-Type", "application/x-page")
		w.WriteHeader(code)
		io.WriteString(w, b.String())
	})
	cls := "haproxy"
	in := func(ann func(string) string) render.Inputs {
		var in render.Inputs
		in.IngressClasses = []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
			Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}
		for name, port := range map[string]int{"web": app, "errors": pages, "idle": 0} {
			in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
			if port == 0 {
				continue
			}
			p, pn, ready := int32(port), "http", true
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "a", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &pn, Port: &p}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			})
		}
		prefix := networkingv1.PathTypePrefix
		for host, dflt := range map[string]string{"err.test": "errors", "idle.test": "idle"} {
			in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: strings.TrimSuffix(host, ".test"),
					Annotations: map[string]string{ann("default-backend"): dflt, ann("custom-http-errors"): "404, 503"}},
				Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: host,
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}},
					}}}}}}},
			})
		}
		return in
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, pfx := range []struct {
		name, prefix string
		compat       render.Compat
	}{{"ours", render.AnnotationPrefix, render.CompatNone}, {"nginx", render.NginxAnnotationPrefix, render.CompatNginx}} {
		t.Run(pfx.name, func(t *testing.T) {
			m := render.BuildModel(in(func(n string) string { return pfx.prefix + n }), render.Options{AnnotationsCompat: pfx.compat})
			for _, p := range m.Problems {
				// The Ingresses' own "/" paths leave their default-backend
				// no unmatched request (not reported): error pages still
				// come from its Service.
				if p.Reason != render.NoEndpoints {
					t.Errorf("problem: %v", p)
				}
			}
			httpPort := freePort(t)
			out, err := haproxycfg.Render(m, haproxycfg.Config{Template: tmpl,
				HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(freePort(t))})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFiles(t, dir, out)
			for version, bin := range testenv.HAProxies(t) {
				t.Run("haproxy-"+version, func(t *testing.T) {
					startHAProxy(t, bin, filepath.Join(dir, haproxycfg.ConfigFile), httpPort)
					get := func(host, path string, hdr map[string]string) (int, string, string) {
						t.Helper()
						req, _ := http.NewRequest("GET", "http://"+host+path, nil)
						for k, v := range hdr {
							req.Header.Set(k, v)
						}
						tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
							return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(httpPort))
						}}
						defer tr.CloseIdleConnections()
						resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
						if err != nil {
							t.Fatalf("GET %s%s: %v", host, path, err)
						}
						defer resp.Body.Close()
						body, _ := io.ReadAll(resp.Body)
						return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
					}
					code, ct, body := get("err.test", "/missing?x=1", map[string]string{"Accept": "application/json", "X-Request-ID": "req-7"})
					want := "page GET /\nX-Code=404\nX-Format=application/json\nX-Original-URI=/missing?x=1\nX-Namespace=a\nX-Ingress-Name=err\nX-Service-Name=web\nX-Service-Port=80\nX-Request-ID=req-7"
					if code != 404 || ct != "application/x-page" || body != want {
						t.Errorf("/missing: %d %q %q, want 404 application/x-page %q", code, ct, body, want)
					}
					// Without X-Request-ID, the endpoint and the page get
					// the same generated one.
					code, _, body = get("err.test", "/down", nil)
					id, _ := strings.CutPrefix(body[strings.LastIndex(body, "\n")+1:], "X-Request-ID=")
					if code != 503 || !strings.Contains(body, "X-Code=503\n") || len(id) < 16 {
						t.Errorf("/down: %d %q, want 503 with X-Code=503 and an X-Request-ID", code, body)
					}
					if code, ct, body := get("err.test", "/teapot", nil); code != 418 || ct != "text/plain" || !strings.HasPrefix(body, "app 418") {
						t.Errorf("/teapot (not listed): %d %q %q, want the endpoint's 418", code, ct, body)
					}
					if code, _, body := get("err.test", "/ok", nil); code != 200 || !strings.HasPrefix(body, "app 200") {
						t.Errorf("/ok: %d %q", code, body)
					}
					// The page Service has no endpoints: the endpoint's own.
					if code, ct, body := get("idle.test", "/missing", nil); code != 404 || ct != "text/plain" || !strings.HasPrefix(body, "app 404") {
						t.Errorf("idle.test/missing: %d %q %q, want the endpoint's 404", code, ct, body)
					}
				})
			}
		})
	}
}
