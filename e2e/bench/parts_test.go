package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
)

func TestWriteManifests(t *testing.T) {
	s := Spec{Ingresses: 10, BackendIP: func(i int) string {
		return []string{"198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.15", "198.18.0.16", "198.18.0.17"}[i%8]
	}}
	var all bytes.Buffer
	if err := WriteManifests(&all, s, nil); err != nil {
		t.Fatal(err)
	}
	in, problems := manifest.Decode("all.yaml", all.Bytes())
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(in.Ingresses) != 10 || len(in.Services) != 2 || len(in.EndpointSlices) != 2 || len(in.IngressClasses) != 1 {
		t.Errorf("decoded %d Ingresses, %d Services, %d EndpointSlices, %d IngressClasses", len(in.Ingresses), len(in.Services), len(in.EndpointSlices), len(in.IngressClasses))
	}
	var one bytes.Buffer
	if err := WriteManifests(&one, s, []int{9}); err != nil {
		t.Fatal(err)
	}
	in, problems = manifest.Decode("one.yaml", one.Bytes())
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(in.Ingresses) != 1 || in.Ingresses[0].Spec.Rules[0].Host != Host(9) || len(in.Services) != 1 || in.Services[0].Name != ServiceName(s.ServiceOf(9)) {
		t.Errorf("single: %+v", in)
	}
	if len(in.EndpointSlices[0].Endpoints) != 3 {
		t.Errorf("Service %d has %d endpoints", s.ServiceOf(9), len(in.EndpointSlices[0].Endpoints))
	}
}

// Each dump format decodes to the same objects as WriteManifests' file,
// with the API server's fields it adds.
func TestWriteDump(t *testing.T) {
	s := Spec{Ingresses: 10, BackendIP: func(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }}
	var plain bytes.Buffer
	if err := WriteManifests(&plain, s, nil); err != nil {
		t.Fatal(err)
	}
	want, problems := manifest.Decode("plain.yaml", plain.Bytes())
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	for _, f := range DumpFormats {
		var dump bytes.Buffer
		if err := WriteDump(&dump, s, nil, f); err != nil {
			t.Fatal(err)
		}
		in, problems := manifest.Decode("dump", dump.Bytes())
		if len(problems) > 0 {
			t.Fatalf("%s: problems: %v", f, problems)
		}
		if len(in.Ingresses) != 10 || len(in.Services) != 2 || len(in.EndpointSlices) != 2 || len(in.IngressClasses) != 1 {
			t.Fatalf("%s: decoded %d Ingresses, %d Services, %d EndpointSlices, %d IngressClasses", f, len(in.Ingresses), len(in.Services), len(in.EndpointSlices), len(in.IngressClasses))
		}
		if in.Ingresses[9].UID == "" || in.Ingresses[9].Generation != 1 || in.Services[1].ResourceVersion == "" {
			t.Errorf("%s: no server fields: %+v", f, in.Ingresses[9].ObjectMeta)
		}
		for i, ing := range in.Ingresses {
			if !reflect.DeepEqual(ing.Spec, want.Ingresses[i].Spec) {
				t.Errorf("%s: Ingress %d differs: %+v", f, i, ing.Spec)
			}
		}
		for i, es := range in.EndpointSlices {
			if !reflect.DeepEqual(es.Endpoints, want.EndpointSlices[i].Endpoints) {
				t.Errorf("%s: EndpointSlice %d differs", f, i)
			}
		}
	}
}

func TestTargetOf(t *testing.T) {
	s := Spec{Ingresses: 1000} // 200 Services
	tg := TargetOf(s, 201)     // Service 1: 3 endpoints, a1 a2 a3
	if tg.Host != Host(201) || len(tg.Bodies) != 3 || !tg.Bodies["service=a1\n"] || !tg.Bodies["service=a3\n"] {
		t.Errorf("%+v", tg)
	}
	tg = TargetOf(s, 7) // Service 7: 3 endpoints, wrapping: a7 a0 a1
	if !tg.Bodies["service=a7\n"] || !tg.Bodies["service=a0\n"] || tg.Bodies["service=a2\n"] {
		t.Errorf("%+v", tg)
	}
}

const renderedSample = `global
    default-path config
    hard-stop-after 30s

frontend ingress
    bind 127.0.0.1:8080
    http-request set-var(txn.tls) var(txn.host),map_str(maps/tls-hosts.map)
    http-request set-var(txn.backend) var(txn.host),concat(,txn.path),map_str(maps/exact.map)
    http-request set-var(txn.backend) var(txn.host),concat(,txn.path,/),map_beg(maps/prefix.map) unless { var(txn.backend) -m found }
    http-request set-var(txn.backend) var(txn.wild),concat(,txn.path),map_str(maps/exact.map) unless { var(txn.backend) -m found }
    default_backend _default_404

backend _default_404
    http-request return status 404 content-type text/plain string "404 page not found"

# Routes whose Service, port or endpoints are missing: no server, so 503.
backend _unavailable

# Service default/web port 80
backend default_web_80
    balance roundrobin
    server s1 10.0.0.1:80 id 1
    server s2 127.0.0.1:1 id 2 disabled
`

func TestMinimalConfig(t *testing.T) {
	cfg, maps, size, err := MinimalConfig([]byte(renderedSample), "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(maps, " ") != "maps/tls-hosts.map maps/exact.map maps/prefix.map" {
		t.Errorf("maps %q", maps)
	}
	if size.Backends != 3 || size.Servers != 2 || size.MapFiles != 3 {
		t.Errorf("size %+v", size)
	}
	for _, want := range []string{
		"bind 127.0.0.1:9\n",
		"req.hdr(host),map_str(maps/tls-hosts.map)\n",
		"req.hdr(host),map_beg(maps/prefix.map)\n",
		"backend _unavailable\n\nbackend default_web_80\n    server s1 10.0.0.1:80 id 1\n    server s2 127.0.0.1:1 id 2 disabled\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("no %q in\n%s", want, cfg)
		}
	}
	for _, not := range []string{"balance", "http-request return", "hard-stop-after", "txn.host"} {
		if strings.Contains(cfg, not) {
			t.Errorf("%q in\n%s", not, cfg)
		}
	}

	dir, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(renderedSample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "maps"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"tls-hosts.map": "# c\n", "exact.map": "# c\na.test/x b\n", "prefix.map": "# c\na.test/ b\nb.test/ b\n\n"} {
		if err := os.WriteFile(filepath.Join(dir, "maps", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	size, err = WriteMinimalDir(dir, out, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if size.MapEntries != 3 {
		t.Errorf("size %+v", size)
	}
	if data, err := os.ReadFile(filepath.Join(out, "maps", "prefix.map")); err != nil || string(data) != "a.test/ b\nb.test/ b\n" {
		t.Errorf("prefix.map %q %v", data, err)
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(`# HELP haproxy_sidecar_passes_total Passes.
# TYPE haproxy_sidecar_passes_total counter
haproxy_sidecar_passes_total{outcome="reload"} 3
haproxy_sidecar_passes_total{outcome="runtime"} 4
haproxy_sidecar_reloads_total{result="success"} 3
haproxy_sidecar_haproxy_old_workers 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := Sum(m, "haproxy_sidecar_passes_total"); !ok || v != 7 {
		t.Errorf("passes %v %v", v, ok)
	}
	if m[`haproxy_sidecar_reloads_total{result="success"}`] != 3 || m["haproxy_sidecar_haproxy_old_workers"] != 1 {
		t.Errorf("%v", m)
	}
	m, err = ParseMetrics(strings.NewReader("a_total 1\nb_total{x=\"y\"} 2\n"), "b_")
	if err != nil || len(m) != 1 || m[`b_total{x="y"}`] != 2 {
		t.Errorf("%v %v", m, err)
	}
}

// The applied variant's objects are what kubectl and the EndpointSlice
// controller write: kubectl's last-applied copy is the object itself as a
// manifest, and each endpoint names its Pod, node and zone.
func TestAppliedObjects(t *testing.T) {
	s := Spec{Ingresses: 10, Applied: true, BackendIP: func(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }}
	ing := s.Ingress(3)
	var manifest networkingv1.Ingress
	if err := json.Unmarshal([]byte(ing.Annotations["kubectl.kubernetes.io/last-applied-configuration"]), &manifest); err != nil {
		t.Fatalf("last-applied: %v", err)
	}
	if manifest.Kind != "Ingress" || manifest.APIVersion != "networking.k8s.io/v1" || manifest.Name != ing.Name || !reflect.DeepEqual(manifest.Spec, ing.Spec) {
		t.Errorf("last-applied copy %+v is not the Ingress %+v", manifest, ing)
	}
	if svc := s.Service(1); !strings.Contains(svc.Annotations["kubectl.kubernetes.io/last-applied-configuration"], `"kind":"Service"`) {
		t.Errorf("Service annotations %v", svc.Annotations)
	}
	es := s.EndpointSlice(1, 1)
	if len(es.Endpoints) == 0 {
		t.Fatal("no endpoints")
	}
	for _, e := range es.Endpoints {
		if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || e.TargetRef.UID == "" || e.NodeName == nil || e.Zone == nil {
			t.Errorf("endpoint %+v lacks its Pod, node or zone", e)
		}
	}
	if plain := (Spec{Ingresses: 10, BackendIP: s.BackendIP}); len(plain.Ingress(3).Annotations) != 0 || plain.EndpointSlice(1, 1).Endpoints[0].TargetRef != nil {
		t.Error("the plain variant's objects carry what only applied ones should")
	}
}
