package controller

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
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

// cluster describes a small cluster: Services with their endpoint
// addresses, and routes "host/path=service" on one Ingress.
type cluster struct {
	services map[string][]string
	routes   []string
	tlsHost  string // a TLS entry for this host when set
	// annotations are the Ingress's.
	annotations map[string]string
	// editTemplate, when set, edits the embedded template's text.
	editTemplate func(string) string
	// prev is the model HAProxy serves, for stable server slots.
	prev *render.Model
	// tcp, when set, is the TCP services ConfigMap ns/tcp's data.
	tcp map[string]string
	// canary, when set, are the annotations of a canary Ingress (younger)
	// for the first route's host and path, to Service "b".
	canary map[string]string
	// external are ExternalName Services: name -> spec.externalName.
	external map[string]string
	// secrets are TLS Secrets, each with a TLS entry of the Ingress:
	// name -> its hosts, space-separated; certGen picks their key
	// material (the same for the same name, hosts and certGen).
	secrets map[string]string
	certGen int
	// spares is render.Options.SpareBackends.
	spares int
}

// tlsPEM is a self-signed certificate and key for hosts, the same for the
// same key.
func tlsPEM(t *testing.T, key string, hosts []string) (crt, pem []byte) {
	t.Helper()
	tlsPEMsMu.Lock()
	defer tlsPEMsMu.Unlock()
	if p, ok := tlsPEMs[key]; ok {
		return p[0], p[1]
	}
	crt, pem = testenv.SelfSigned(t, hosts[0], "")
	tlsPEMs[key] = [2][]byte{crt, pem}
	return crt, pem
}

var (
	tlsPEMsMu sync.Mutex
	tlsPEMs   = map[string][2][]byte{}
)

func (c cluster) state(t *testing.T) *state {
	t.Helper()
	cls := "haproxy"
	in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{
		ObjectMeta: metav1.ObjectMeta{Name: cls}, Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
	port, portName, prefix, ready := int32(8080), "http", networkingv1.PathTypePrefix, true
	for name, addrs := range c.services {
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: 80}}}})
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port}}}
		for _, a := range addrs {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ing", Annotations: c.annotations},
		Spec: networkingv1.IngressSpec{IngressClassName: &cls}}
	for _, r := range c.routes {
		hostPath, svc, _ := strings.Cut(r, "=")
		port := int32(80)
		if name, p, ok := strings.Cut(svc, ":"); ok { // "svc:port"
			n, _ := strconv.Atoi(p)
			svc, port = name, int32(n)
		}
		host, path, _ := strings.Cut(hostPath, "/")
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{Path: "/" + path, PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: port}}}}}}}})
	}
	if c.tlsHost != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{c.tlsHost}, SecretName: "missing"}}
	}
	for _, name := range slices.Sorted(maps.Keys(c.secrets)) {
		hosts := strings.Fields(c.secrets[name])
		crt, key := tlsPEM(t, fmt.Sprintf("%s %v %d", name, hosts, c.certGen), hosts)
		ing.Spec.TLS = append(ing.Spec.TLS, networkingv1.IngressTLS{Hosts: hosts, SecretName: name})
		in.Secrets = append(in.Secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}})
	}
	in.Ingresses = append(in.Ingresses, ing)
	if c.canary != nil {
		can := ing.DeepCopy()
		can.Name, can.Annotations, can.CreationTimestamp = "canary", c.canary, metav1.NewTime(time.Unix(1_000_000_000, 0))
		can.Spec.TLS = nil
		can.Spec.Rules = can.Spec.Rules[:1]
		can.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "b"
		in.Ingresses = append(in.Ingresses, can)
	}
	for name, host := range c.external {
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: host}})
	}
	dir := ""
	if c.editTemplate != nil {
		// A custom template: the embedded one, edited.
		src, err := os.ReadFile("../templates/" + templates.Main)
		if err != nil {
			t.Fatal(err)
		}
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, templates.Main), []byte(c.editTemplate(string(src))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, err := embeddedTemplate()
	if dir != "" {
		tmpl, err = templates.Load(dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	opts := render.Options{Previous: c.prev, SpareBackends: c.spares}
	if c.tcp != nil {
		in.ConfigMaps = []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tcp"}, Data: c.tcp}}
		opts.TCPServicesConfigMap = "ns/tcp"
	}
	m := render.BuildModel(in, opts)
	out, err := haproxycfg.Render(m, haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	return &state{model: m, out: out}
}

// embeddedTemplate is the one embedded template all states without a
// custom one share, as the renders of one run do.
var embeddedTemplate = sync.OnceValues(func() (*template.Template, error) { return templates.Load("") })

func describe(p plan) string {
	if p.reload {
		return "reload"
	}
	var ops []string
	for _, s := range p.slots {
		if s.fqdn != "" {
			ops = append(ops, fmt.Sprintf("fqdn %s/%s=%s", s.backend, s.server, s.fqdn))
			continue
		}
		ops = append(ops, fmt.Sprintf("slot %s/%s=%s:%d", s.backend, s.server, s.addr, s.port))
	}
	for _, m := range p.maps {
		verb := "set"
		switch {
		case m.value == "":
			verb = "del"
		case m.add:
			verb = "add"
		}
		ops = append(ops, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", verb, m.file, m.key, m.value)))
	}
	return strings.Join(ops, "; ")
}

func TestPlan(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.9"}}, routes: []string{"x.test/=a", "y.test/=b"}}
	with := func(f func(c *cluster)) cluster {
		c := cluster{services: map[string][]string{}, routes: append([]string(nil), base.routes...), tlsHost: base.tlsHost}
		for k, v := range base.services {
			c.services[k] = append([]string(nil), v...)
		}
		f(&c)
		return c
	}
	tests := []struct {
		name string
		next cluster
		want string
	}{
		{"nothing changed", base, ""},
		{"endpoint moved", with(func(c *cluster) { c.services["a"] = []string{"10.0.0.2"} }),
			"slot ns_a_80/s1=10.0.0.2:8080"},
		{"endpoint added within the slots", with(func(c *cluster) { c.services["a"] = []string{"10.0.0.1", "10.0.0.3"} }),
			"slot ns_a_80/s2=10.0.0.3:8080"},
		{"endpoint gone", with(func(c *cluster) { c.services["a"] = nil }),
			"slot ns_a_80/s1=:0"},
		{"more endpoints than slots", with(func(c *cluster) {
			c.services["a"] = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}
		}), "reload"},
		{"route to an existing backend added", with(func(c *cluster) { c.routes = append(c.routes, "x.test/api=b") }),
			"add maps/prefix.map x.test/api/ ns_b_80"},
		{"route moved to another existing backend", with(func(c *cluster) { c.routes = []string{"x.test/=b", "y.test/=b"} }),
			"reload"}, // backend a is no longer used, so it goes away: a reload
		{"route on another host to an existing backend", with(func(c *cluster) { c.routes = append(c.routes, "y.test/z=a") }),
			"add maps/prefix.map y.test/z/ ns_a_80"},
		{"route to a new backend", with(func(c *cluster) {
			c.services["c"] = []string{"10.0.0.7"}
			c.routes = append(c.routes, "z.test/=c")
		}), "reload"},
	}
	old := base.state(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(diff(old, tt.next.state(t))); got != tt.want {
				t.Errorf("plan %q, want %q", got, tt.want)
			}
		})
	}
	if got := describe(diff(nil, old)); got != "reload" {
		t.Errorf("first pass: plan %q, want reload", got)
	}
	// Removing a route while its backend stays in use, and changing which
	// backend a key points to, are runtime changes too.
	three := cluster{services: base.services, routes: []string{"x.test/=a", "y.test/=b", "y.test/z=a"}}
	if got := describe(diff(three.state(t), old)); got != "del maps/prefix.map y.test/z/" {
		t.Errorf("route removed: plan %q", got)
	}
	swapped := cluster{services: base.services, routes: []string{"x.test/=b", "y.test/=a"}}
	if got := describe(diff(old, swapped.state(t))); got != "set maps/prefix.map x.test/ ns_b_80; set maps/prefix.map y.test/ ns_a_80" {
		t.Errorf("routes swapped: plan %q", got)
	}
}

// A new Service given a spare backend is a runtime change: the spare's
// slots and the route map entries; so is its removal. One that outgrows
// the spare's slots gets its own backend, a reload.
func TestPlanSpareBackends(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}, spares: 2}
	first := base.state(t)
	withC := func(prev *render.Model, addrs ...string) cluster {
		c := base
		c.services = map[string][]string{"a": {"10.0.0.1"}, "c": addrs}
		c.routes = []string{"x.test/=a", "z.test/=c"}
		c.prev = prev
		return c
	}
	added := withC(first.model, "10.0.0.7").state(t)
	if got, want := describe(diff(first, added)), "slot _spare_00000/s1=10.0.0.7:8080; add maps/prefix.map z.test/ _spare_00000"; got != want {
		t.Errorf("a new Service: plan %q, want %q", got, want)
	}
	moved := withC(added.model, "10.0.0.8", "10.0.0.7").state(t)
	if got, want := describe(diff(added, moved)), "slot _spare_00000/s2=10.0.0.8:8080"; got != want {
		t.Errorf("its endpoint added: plan %q, want %q", got, want)
	}
	gone := base
	gone.prev = moved.model
	if got, want := describe(diff(moved, gone.state(t))), "slot _spare_00000/s1=:0; slot _spare_00000/s2=:0; del maps/prefix.map z.test/"; got != want {
		t.Errorf("the Service removed: plan %q, want %q", got, want)
	}
	big := withC(added.model, "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5")
	if p := diff(added, big.state(t)); !p.reload || p.cause != CauseBackends {
		t.Errorf("more endpoints than a spare's slots: plan %q (%s), want a reload for backends", describe(p), p.cause)
	}
}

// A TCP service's endpoints change through the runtime API as an HTTP
// backend's do (its backend's slots, beside the HTTP backend of the same
// Service port); what its frontend or its servers' options say (a port,
// PROXY either way) needs a reload.
func TestPlanTCPServices(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.9"}}, routes: []string{"x.test/=b"},
		tcp: map[string]string{"5432": "ns/a:80", "6379": "ns/b:http"}}
	with := func(f func(c *cluster)) cluster {
		c := cluster{services: map[string][]string{}, routes: base.routes, tcp: map[string]string{}}
		for k, v := range base.services {
			c.services[k] = append([]string(nil), v...)
		}
		for k, v := range base.tcp {
			c.tcp[k] = v
		}
		f(&c)
		return c
	}
	tests := []struct {
		name string
		next cluster
		want string
	}{
		{"nothing changed", base, ""},
		{"endpoint moved", with(func(c *cluster) { c.services["a"] = []string{"10.0.0.2"} }), "slot _tcp_5432/s1=10.0.0.2:8080"},
		{"endpoint added", with(func(c *cluster) { c.services["a"] = []string{"10.0.0.1", "10.0.0.3"} }), "slot _tcp_5432/s2=10.0.0.3:8080"},
		{"endpoint gone", with(func(c *cluster) { c.services["a"] = nil }), "slot _tcp_5432/s1=:0"},
		{"endpoint of a Service HTTP routes use too", with(func(c *cluster) { c.services["b"] = []string{"10.0.0.8"} }),
			"slot _tcp_6379/s1=10.0.0.8:8080; slot ns_b_80/s1=10.0.0.8:8080"},
		{"more endpoints than slots", with(func(c *cluster) {
			c.services["a"] = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}
		}), "reload"},
		{"PROXY to the backend", with(func(c *cluster) { c.tcp["5432"] = "ns/a:80::PROXY" }), "reload"},
		{"PROXY from the client", with(func(c *cluster) { c.tcp["5432"] = "ns/a:80:PROXY" }), "reload"},
		{"another port", with(func(c *cluster) { delete(c.tcp, "5432"); c.tcp["5433"] = "ns/a:80" }), "reload"},
		{"entry added", with(func(c *cluster) { c.tcp["5433"] = "ns/a:80" }), "reload"},
		{"entry removed", with(func(c *cluster) { delete(c.tcp, "5432") }), "reload"},
		{"entry to another Service", with(func(c *cluster) { c.tcp["5432"] = "ns/b:80" }), "reload"},
	}
	old := base.state(t)
	if len(old.model.TCPServices) != 2 {
		t.Fatalf("TCP services %+v", old.model.TCPServices)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(diff(old, tt.next.state(t))); got != tt.want {
				t.Errorf("plan %q, want %q", got, tt.want)
			}
		})
	}
}

// A canary's weight and header value change at run time (the canary map);
// what changes its lines (header name, weight total, a header rule added)
// reloads.
func TestPlanCanaryAtRunTime(t *testing.T) {
	p := render.AnnotationPrefix
	with := func(ann map[string]string) cluster {
		c := cluster{services: map[string][]string{"a": {"10.0.0.1"}, "b": {"10.0.0.9"}}, routes: []string{"x.test/=a"},
			canary: map[string]string{p + "canary": "true", p + "canary-by-header": "X-Beta", p + "canary-by-header-value": "yes"}}
		for k, v := range ann {
			c.canary[p+k] = v
		}
		return c
	}
	old := with(map[string]string{"canary-weight": "10"}).state(t)
	key := "ns_a_80~ns_b_80"
	for _, tt := range []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"same", map[string]string{"canary-weight": "10"}, ""},
		{"reweighted", map[string]string{"canary-weight": "90"}, "set " + render.CanaryMapFile + " " + key + " 90|yes"},
		{"weight 0", map[string]string{"canary-weight": "0"}, "set " + render.CanaryMapFile + " " + key + " 0|yes"},
		{"all of it", map[string]string{"canary-weight": "100"}, "set " + render.CanaryMapFile + " " + key + " 100|yes"},
		{"header value", map[string]string{"canary-weight": "10", "canary-by-header-value": "v2"}, "set " + render.CanaryMapFile + " " + key + " 10|v2"},
		{"weight total", map[string]string{"canary-weight": "10", "canary-weight-total": "1000"}, "reload"},
		{"header name", map[string]string{"canary-weight": "10", "canary-by-header": "X-Gamma"}, "reload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(diff(old, with(tt.ann).state(t))); got != tt.want {
				t.Errorf("plan %q, want %q", got, tt.want)
			}
		})
	}
}

// An ExternalName backend's server is a name HAProxy resolves: endpoint
// changes elsewhere stay runtime changes and never address it, a new name
// is sent as a name ("set server ... fqdn"), and a name that becomes
// refused is a reload (its backend loses its server). A new port is a new
// backend (the backend's name holds the port): a reload too.
func TestPlanExternalName(t *testing.T) {
	mk := func(host string, routes ...string) cluster {
		return cluster{services: map[string][]string{"a": {"10.0.0.1"}}, external: map[string]string{"e": host},
			routes: append([]string{"x.test/=a", "e.test/=e"}, routes...)}
	}
	old := mk("api.example.com").state(t)
	moved := mk("api.example.com")
	moved.services["a"] = []string{"10.0.0.2"}
	for _, c := range []struct {
		name  string
		next  cluster
		want  string
		cause Cause
	}{
		{"nothing changed", mk("api.example.com"), "", ""},
		{"endpoint of another backend moved", moved, "slot ns_a_80/s1=10.0.0.2:8080", ""},
		{"route to the ExternalName backend added", mk("api.example.com", "e.test/v2=e"), "add maps/prefix.map e.test/v2/ ns_e_80", ""},
		{"name changed", mk("api2.example.com"), "fqdn ns_e_80/s1=api2.example.com", ""},
		{"name refused", mk("web.other.svc.cluster.local"), "reload", CauseBackends},
		{"port changed", func() cluster {
			c := mk("api.example.com")
			c.routes = []string{"x.test/=a", "e.test/=e:8443"}
			return c
		}(), "reload", CauseBackends},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := diff(old, c.next.state(t))
			if got := describe(p); got != c.want || p.cause != c.cause {
				t.Errorf("plan %q (cause %q), want %q (cause %q)", got, p.cause, c.want, c.cause)
			}
			for _, cmd := range p.commands() {
				if strings.HasPrefix(cmd, "set server ns_e_80") && !strings.HasSuffix(cmd, " fqdn api2.example.com") {
					t.Errorf("a runtime command other than its new name addresses the ExternalName server: %s", cmd)
				}
			}
		})
	}
}

// Output of a new template can differ anywhere, even where a model change
// could not: it is always reloaded (and so validated), never patched at run
// time.
func TestPlanTemplateChanges(t *testing.T) {
	c := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}}
	old, next := c.state(t), c.state(t)
	next.renderer = old.renderer + 1
	if got := describe(diff(old, next)); got != "reload" {
		t.Errorf("new renderer, same output: plan %q, want reload", got)
	}
	// Same renderer, a configuration that differs outside server lines
	// (as a different template would make it): reload. Whether the
	// template renders backends one by one (.BackendSections) or ranges
	// over .Backends itself, and whether the change is in a backend
	// section or elsewhere.
	ranging := func(s string) string {
		if !strings.Contains(s, "{{.BackendSections}}") {
			t.Fatal("the embedded template prints no .BackendSections")
		}
		return strings.Replace(s, "{{.BackendSections}}", `{{range .Backends}}{{template "backend" .}}{{end}}`, 1)
	}
	inSection := func(s string) string {
		return strings.Replace(s, "    balance {{.Balance}}\n", "    balance {{.Balance}}\n    no-such-keyword\n", 1)
	}
	inHead := func(s string) string { return strings.Replace(s, "    option dontlognull\n", "", 1) }
	for name, tc := range map[string]struct{ old, next func(string) string }{
		"sections, backend":  {nil, inSection},
		"sections, frontend": {nil, inHead},
		"ranging, backend":   {ranging, func(s string) string { return inSection(ranging(s)) }},
		"ranging, frontend":  {ranging, func(s string) string { return inHead(ranging(s)) }},
	} {
		before, after := c, c
		before.editTemplate, after.editTemplate = tc.old, tc.next
		// Endpoints change too: the new server lines alone would be a
		// runtime change.
		after.services = map[string][]string{"a": {"10.0.0.2"}}
		old, next := before.state(t), after.state(t)
		if got := describe(diff(old, next)); got != "reload" {
			t.Errorf("%s: configuration changed outside server lines: plan %q, want reload", name, got)
		}
		unedited := after
		unedited.editTemplate = tc.old
		if got := describe(diff(old, unedited.state(t))); got != "slot ns_a_80/s1=10.0.0.2:8080" {
			t.Errorf("%s: only the server changed: plan %q", name, got)
		}
	}
}

// Removing one endpoint changes one server slot: the others keep theirs
// (render.Options.Previous), and the file says the same.
func TestPlanKeepsSurvivingEndpointsInTheirSlots(t *testing.T) {
	old := cluster{services: map[string][]string{"a": {"10.0.0.1", "10.0.0.2", "10.0.0.3"}}, routes: []string{"x.test/=a"}}.state(t)
	next := cluster{services: map[string][]string{"a": {"10.0.0.2", "10.0.0.3"}}, routes: []string{"x.test/=a"}, prev: old.model}.state(t)
	if got := describe(diff(old, next)); got != "slot ns_a_80/s1=:0" {
		t.Errorf("plan: %q, want only slot s1 emptied", got)
	}
	cfg := string(next.out.Get(haproxycfg.ConfigFile))
	for _, line := range []string{"server s1 127.0.0.1:1 id 1 disabled", "server s2 10.0.0.2:8080 id 2", "server s3 10.0.0.3:8080 id 3"} {
		if !strings.Contains(cfg, line) {
			t.Errorf("haproxy.cfg lacks %q", line)
		}
	}
	// A new endpoint takes the free slot.
	again := cluster{services: map[string][]string{"a": {"10.0.0.2", "10.0.0.3", "10.0.0.4"}}, routes: []string{"x.test/=a"}, prev: next.model}.state(t)
	if got := describe(diff(next, again)); got != "slot ns_a_80/s1=10.0.0.4:8080" {
		t.Errorf("plan: %q, want the new endpoint in s1", got)
	}
}

// The runtime API changes a server's address and state, nothing else: a
// server option it cannot change (maxconn, TLS to the endpoints) means a
// reload, with or without an address change beside it, while an address
// alone is a runtime change. The decision is the renderer's values (its
// slots and skeletons), so it holds for a custom template too: one that
// does not print the server options has nothing to reload for when only
// they and an address change.
func TestPlanServerOptions(t *testing.T) {
	base := cluster{services: map[string][]string{"a": {"10.0.0.1"}}, routes: []string{"x.test/=a"}}
	with := func(addr string, annotations map[string]string, edit func(string) string) cluster {
		c := base
		c.services = map[string][]string{"a": {addr}}
		c.annotations, c.editTemplate = annotations, edit
		return c
	}
	maxconn := map[string]string{render.AnnotationPrefix + "maxconn-server": "10"}
	tls := map[string]string{render.AnnotationPrefix + "backend-protocol": "https"}
	noOptions := func(s string) string {
		if !strings.Contains(s, "{{$.ServerOptions}}") {
			t.Fatal("the template's server line has no {{$.ServerOptions}}")
		}
		return strings.Replace(s, "{{$.ServerOptions}}", "", 1)
	}
	// Once with the states sharing the embedded template, and once each
	// with its own copy of it: the renderer compares the backends' data
	// in the first case, and renders skeletons in the second.
	same := func(s string) string { return s }
	type planCase struct {
		name      string
		old, next cluster
		want      string
	}
	cases := []planCase{
		{"address only", base, with("10.0.0.2", nil, nil), "slot ns_a_80/s1=10.0.0.2:8080"},
		{"address only, with options", with("10.0.0.1", maxconn, nil), with("10.0.0.2", maxconn, nil), "slot ns_a_80/s1=10.0.0.2:8080"},
		{"maxconn added", base, with("10.0.0.1", maxconn, nil), "reload"},
		{"maxconn added and address", base, with("10.0.0.2", maxconn, nil), "reload"},
		{"TLS to the endpoints", base, with("10.0.0.1", tls, nil), "reload"},
		{"TLS to the endpoints and address", base, with("10.0.0.2", tls, nil), "reload"},
		{"options not printed, maxconn added and address", with("10.0.0.1", nil, noOptions), with("10.0.0.2", maxconn, noOptions),
			"slot ns_a_80/s1=10.0.0.2:8080"},
	}
	for _, tc := range cases[:len(cases)-1] {
		tc.name += ", templates of their own"
		tc.old.editTemplate, tc.next.editTemplate = same, same
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		old, next := tc.old.state(t), tc.next.state(t)
		if got := describe(diff(old, next)); got != tc.want {
			t.Errorf("%s: plan %q, want %q", tc.name, got, tc.want)
		}
	}
	// The options are on the server lines (and only there for maxconn),
	// so the cases above are about server lines.
	cfg := string(with("10.0.0.2", maxconn, nil).state(t).out.Get(haproxycfg.ConfigFile))
	if !strings.Contains(cfg, "server s1 10.0.0.2:8080 id 1 maxconn 10") || strings.Count(cfg, "maxconn 10") != render.MinServerSlots {
		t.Errorf("haproxy.cfg's server lines lack maxconn:\n%s", cfg)
	}
}

func TestReloadSpacing(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		min, took time.Duration
		old       int
		want      time.Duration
	}{
		{s / 2, s / 10, 1, s / 2},                                  // a quick reload: the minimum
		{s / 2, 800 * time.Millisecond, 1, 800 * time.Millisecond}, // a slow one: as long as it took
		{s / 2, s / 10, 0, s / 2},                                  // no old worker left at all
		{s / 2, s / 10, 3, s},                                      // two more draining: twice
		{s / 2, s / 10, 5, 2 * s},                                  // four more: four times
		{s / 2, s / 10, 40, 4 * s},                                 // a pile: at most 8 times
	} {
		if got := reloadSpacing(tc.min, tc.took, tc.old); got != tc.want {
			t.Errorf("reloadSpacing(%s, %s, %d) = %s, want %s", tc.min, tc.took, tc.old, got, tc.want)
		}
	}
}

// What /history records and diff predicts is what the master CLI is sent:
// both come from the plan's one batch, escaped for the CLI (a ';' in a
// path would otherwise end the command on the wire and not in the record).
func TestPlanCommandsAreWhatIsSent(t *testing.T) {
	p := plan{
		slots: []slotOp{{backend: "default_web_80", server: "s1", addr: "10.0.0.1", port: 8080}, {backend: "default_web_80", server: "s2"}},
		maps: []mapOp{
			{file: "maps/prefix.map", key: "a.test/x;y/", value: "default_web_80", add: true},
			{file: "maps/exact.map", key: "a.test/z", value: "default_web_80"},
			{file: "maps/exact.map", key: "a.test/gone"},
		},
	}
	want := []string{
		`set server default_web_80/s1 addr 10.0.0.1 port 8080`,
		`set server default_web_80/s1 state ready`,
		`set server default_web_80/s2 state maint`,
		`set server default_web_80/s2 addr ` + haproxycfg.PlaceholderAddr + ` port ` + fmt.Sprint(haproxycfg.PlaceholderPort),
		`add map maps/prefix.map a.test/x\;y/ default_web_80`,
		`set map maps/exact.map a.test/z default_web_80`,
		`del map maps/exact.map a.test/gone`,
	}
	if got := p.commands(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b := p.batch()
	if b.Err() != nil || strings.Join(b.Commands(), "\n") != strings.Join(p.commands(), "\n") {
		t.Errorf("the batch sent differs from the commands recorded: %v", b.Err())
	}
}

// Certificates change at run time: a new TLS host's certificate is added
// with its crt-list line before the routes and TLS hosts map entries that
// use it, a rotated Secret's is replaced, a removed one's line and
// certificate go last; no command shows a private key. A certificate
// offered for other names, or too large for a payload, is a reload whose
// cause says so.
func TestPlanCertificates(t *testing.T) {
	svcs := map[string][]string{"a": {"10.0.0.1"}}
	routes := []string{"a.test/=a", "b.test/=a"}
	base := cluster{services: svcs, routes: routes, secrets: map[string]string{"a-tls": "a.test"}}
	old := base.state(t)
	withB := cluster{services: svcs, routes: routes, secrets: map[string]string{"a-tls": "a.test", "b-tls": "b.test"}}
	rotated := cluster{services: svcs, routes: routes, secrets: map[string]string{"a-tls": "a.test"}, certGen: 1}
	none := cluster{services: svcs, routes: routes}
	renamed := cluster{services: svcs, routes: routes, secrets: map[string]string{"a-tls": "a.test b.test"}}
	for _, tc := range []struct {
		name      string
		old, next *state
		want      []string // commands, without payloads' digests
		cause     Cause
	}{
		{"a new TLS host", old, withB.state(t), []string{
			"new ssl cert certs/ns_b-tls.pem",
			"set ssl cert certs/ns_b-tls.pem << [certificate and key: ",
			"commit ssl cert certs/ns_b-tls.pem",
			"add ssl crt-list crt-list.txt << certs/ns_b-tls.pem b.test",
			"add map maps/tls-hosts.map b.test 1",
		}, ""},
		{"a rotated Secret", old, rotated.state(t), []string{
			"set ssl cert certs/ns_a-tls.pem << [certificate and key: ",
			"commit ssl cert certs/ns_a-tls.pem",
		}, ""},
		{"a removed TLS entry", old, none.state(t), []string{
			"del map maps/tls-hosts.map a.test",
			"del ssl crt-list crt-list.txt certs/ns_a-tls.pem",
			"del ssl cert certs/ns_a-tls.pem",
		}, ""},
		{"a certificate for other names", old, renamed.state(t), nil, CauseCertificates},
	} {
		p := diff(tc.old, tc.next)
		if p.cause != tc.cause || p.reload != (tc.cause != "") || (p.reload && p.detail == "") {
			t.Errorf("%s: reload %v, cause %q (%q), want cause %q", tc.name, p.reload, p.cause, p.detail, tc.cause)
			continue
		}
		cmds := p.commands()
		if len(cmds) != len(tc.want) {
			t.Errorf("%s: commands\n%s\nwant\n%s", tc.name, strings.Join(cmds, "\n"), strings.Join(tc.want, "\n"))
			continue
		}
		for i := range cmds {
			if !strings.HasPrefix(cmds[i], tc.want[i]) || strings.Contains(cmds[i], "PRIVATE") {
				t.Errorf("%s: command %d is %q, want %q", tc.name, i, cmds[i], tc.want[i])
			}
		}
	}

	// A chain over a payload's size: the Secret's certificate with
	// copies of itself as intermediates.
	big := withB.state(t)
	m := *big.model
	m.Certs = slices.Clone(m.Certs)
	for i := range m.Certs {
		if m.Certs[i].Secret == "b-tls" {
			m.Certs[i].PEM = append(bytes.Repeat(m.Certs[i].PEM[:bytes.Index(m.Certs[i].PEM, []byte("-----END CERTIFICATE-----\n"))+26], 30), m.Certs[i].PEM...)
		}
	}
	out, err := haproxycfg.Render(&m, haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: mustTemplate(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p := diff(old, &state{model: &m, out: out}); !p.reload || p.cause != CauseCertificates || !strings.Contains(p.detail, "payload") {
		t.Errorf("a chain too large for a payload: reload %v, cause %q (%q)", p.reload, p.cause, p.detail)
	}
}

func mustTemplate(t *testing.T) *template.Template {
	t.Helper()
	tmpl, err := embeddedTemplate()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// An endpoint moved into a slot that served another: the address alone
// on 3.0; on 2.6 (keepsIdle, which Predict assumes) maintenance first,
// which closes the idle connections to the endpoint that left, but only
// while another server of the backend stays up (a backend whose only
// server is in maintenance answers 503).
func TestPlanMoveIntoServingSlot(t *testing.T) {
	two := cluster{services: map[string][]string{"a": {"10.0.0.1", "10.0.0.2"}}, routes: []string{"x.test/=a"}}.state(t)
	replaced := cluster{services: map[string][]string{"a": {"10.0.0.1", "10.0.0.3"}}, routes: []string{"x.test/=a"}, prev: two.model}.state(t)
	p := diff(two, replaced)
	if got, want := p.commands(), []string{"set server ns_a_80/s2 addr 10.0.0.3 port 8080"}; !slices.Equal(got, want) {
		t.Errorf("3.0: %q, want %q", got, want)
	}
	p.keepsIdle = true
	if got, want := p.commands(), []string{"set server ns_a_80/s2 state maint", "set server ns_a_80/s2 addr 10.0.0.3 port 8080", "set server ns_a_80/s2 state ready"}; !slices.Equal(got, want) {
		t.Errorf("2.6, s1 staying up: %q, want %q", got, want)
	}
	alone := cluster{services: map[string][]string{"a": {"10.0.0.4", "10.0.0.5"}}, routes: []string{"x.test/=a"}, prev: two.model}.state(t)
	p = diff(two, alone)
	p.keepsIdle = true
	for _, c := range p.commands() {
		if strings.Contains(c, "maint") {
			t.Errorf("2.6, every endpoint moved: %q takes the backend's servers down", p.commands())
			break
		}
	}
}
