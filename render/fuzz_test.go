package render_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// hostileSeeds are manifests whose values try HAProxy's syntax: a newline,
// '#', quotes, '$' and ${...}, %[...] sample expressions, spaces, NUL and
// look-alike characters in every field that reaches a file.
var hostileSeeds = []string{
	`{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"a","namespace":"default"},"spec":{"rules":[{"host":"x.test\nlua-load /etc/passwd","http":{"paths":[{"path":"/a b","pathType":"Prefix","backend":{"service":{"name":"s","port":{"number":80}}}}]}}]}}`,
	`{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"a","namespace":"default"},"spec":{"rules":[{"host":"x.test","http":{"paths":[{"path":"/${HOME}%[env(HOME)]#x","pathType":"Exact","backend":{"service":{"name":"s\"","port":{"name":"h ttp"}}}}]}}],"tls":[{"hosts":["x.test"],"secretName":"../etc"}]}}`,
	`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s","namespace":"default"},"spec":{"ports":[{"name":"http","port":80}]}}` + "\n---\n" +
		`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"s-1","namespace":"default","labels":{"kubernetes.io/service-name":"s"}},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1 backup"]},{"addresses":["10.0.0.2"]}],"ports":[{"name":"http","port":8080}]}` + "\n---\n" +
		`{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"b","namespace":"default"},"spec":{"defaultBackend":{"service":{"name":"s","port":{"number":80}}},"rules":[{"host":"ｘ.test","http":{"paths":[{"path":"/\u0000","pathType":"ImplementationSpecific","backend":{"service":{"name":"s","port":{"number":80}}}}]}}]}}`,
	`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"haproxy-sidecar","namespace":"default"},"data":{"log-format":"%[env(HOME)]","timeout-client":"5s\nlua-load x","ssl-ciphers":"${HOME}"}}`,
	// Valid annotations of both prefixes, one edit away from invalid ones.
	`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s","namespace":"default"},"spec":{"ports":[{"name":"http","port":80}]}}` + "\n---\n" +
		`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"users","namespace":"default"},"stringData":{"auth":"alice:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"}}` + "\n---\n" +
		`{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"a","namespace":"default","annotations":{"haproxy-sidecar.io/auth-basic-secret":"users","haproxy-sidecar.io/auth-realm":"team","haproxy-sidecar.io/rewrite-target":"/v2","haproxy-sidecar.io/cors-enable":"true","haproxy-sidecar.io/cors-allow-origin":"https://a.test","haproxy-sidecar.io/affinity":"cookie","haproxy-sidecar.io/session-cookie-max-age":"1h","haproxy-sidecar.io/balance":"leastconn","haproxy-sidecar.io/health-check-path":"/healthz","nginx.ingress.kubernetes.io/limit-rps":"5","nginx.ingress.kubernetes.io/whitelist-source-range":"10.0.0.0/8","nginx.ingress.kubernetes.io/proxy-body-size":"8m","nginx.ingress.kubernetes.io/permanent-redirect":"https://b.test/x"}},"spec":{"rules":[{"host":"x.test","http":{"paths":[{"path":"/api","pathType":"Prefix","backend":{"service":{"name":"s","port":{"number":80}}}}]}}]}}`,
}

// FuzzManifestRender: any manifest file decodes and renders without a
// panic; the incremental renderer gives the full render's files byte for
// byte; every line of haproxy.cfg is one the config-parser oracle can
// attribute; and HAProxy 2.6 accepts the result (`haproxy -c`), so that
// whatever an object says is either in a validated form or reported and
// skipped. A short run is part of `make test`.
func FuzzManifestRender(f *testing.F) {
	cases, err := filepath.Glob("../testdata/*/manifests.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range hostileSeeds {
		f.Add([]byte(s))
	}
	tmpl, err := templates.Load("")
	if err != nil {
		f.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	haproxy := testenv.HAProxy26(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, _ := manifest.Decode("fuzz.yaml", data)
		// Every Ingress is ours unless it names another class: the
		// default class of this controller.
		in.IngressClasses = append(in.IngressClasses, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Annotations: map[string]string{render.DefaultClassAnnotation: "true"}},
			Spec:       networkingv1.IngressClassSpec{Controller: render.DefaultControllerName},
		})
		opts := render.Options{SettingsConfigMap: "default/haproxy-sidecar"}
		// Input that names ingress-nginx's annotations has them read.
		if bytes.Contains(data, []byte(render.NginxAnnotationPrefix)) {
			opts.AnnotationsCompat = render.CompatNginx
		}
		m := render.BuildModel(in, opts)
		out, err := haproxycfg.Render(m, cfg)
		if err != nil {
			t.Fatalf("render failed on object input: %v", err)
		}
		_, inc, err := haproxycfg.NewIncremental(cfg).Render(in, opts)
		if err != nil {
			t.Fatalf("incremental render failed: %v", err)
		}
		for i, file := range out.Files {
			if g := inc.Files[i]; g.Path != file.Path || !bytes.Equal(g.Data(), file.Data()) {
				t.Fatalf("incremental %s differs from the full render's", file.Path)
			}
		}
		checkStructure(t, out.Get(haproxycfg.ConfigFile), m)
		if len(m.Served) == 0 && reflect.DeepEqual(m.Settings, render.DefaultSettings()) {
			return // the fixed configuration, checked by the golden tests
		}
		dir := t.TempDir()
		writeFiles(t, dir, out)
		if err := reload.Check(context.Background(), haproxy, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Fatalf("haproxy -c refuses what was rendered: %v", err)
		}
	})
}
