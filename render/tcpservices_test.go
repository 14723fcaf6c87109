package render_test

import (
	"bytes"
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// ingress-nginx's format, namespace/name:port:[PROXY]:[PROXY], field by
// field.
func TestParseTCPServiceValue(t *testing.T) {
	tests := []struct {
		in           string
		ref          render.ServiceRef
		accept, send bool
		bad          string // part of the error
	}{
		{in: "default/db:5432", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}},
		{in: "other/db:postgres", ref: render.ServiceRef{Namespace: "other", Name: "db", Port: "postgres"}},
		{in: " default/db:5432 ", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}},
		{in: "default/db:5432:PROXY", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}, accept: true},
		{in: "default/db:5432::PROXY", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}, send: true},
		{in: "default/db:5432:proxy:Proxy", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}, accept: true, send: true},
		{in: "default/db:5432::", ref: render.ServiceRef{Namespace: "default", Name: "db", Port: "5432"}},
		{in: "default/db", bad: "want namespace/name:port"},
		{in: "db:5432", bad: "want namespace/name:port"},
		{in: "default/db:5432:PROXY:PROXY:PROXY", bad: "want namespace/name:port"},
		{in: "default/db:5432:HTTP", bad: "only PROXY"},
		{in: "default/db:5432::TLS", bad: "only PROXY"},
		{in: "default/db:0", bad: "not a number from 1 to 65535"},
		{in: "default/db:65536", bad: "not a number from 1 to 65535"},
		{in: "default/db:05432", bad: "not a number from 1 to 65535"},
		{in: "default/db:", bad: "port"},
		{in: "Default/db:5432", bad: "Default"},
		{in: "default/DB:5432", bad: "Service name"},
		{in: "default/db:my port", bad: "port"},
		{in: "default/db:5432\n    lua-load /x", bad: "port"},
		{in: "default/db/x:5432", bad: "Service name"},
	}
	for _, tt := range tests {
		ref, accept, send, err := render.ParseTCPServiceValue(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("%q: error %v, want one saying %q", tt.in, err, tt.bad)
			}
			continue
		}
		if err != nil || ref != tt.ref || accept != tt.accept || send != tt.send {
			t.Errorf("%q: %+v accept %v send %v err %v, want %+v %v %v", tt.in, ref, accept, send, err, tt.ref, tt.accept, tt.send)
		}
	}
}

// tcpInputs are a Service per name (port 7000) whose one endpoint is the
// line server on 127.0.0.1:port, and the TCP services ConfigMap
// default/tcp holding data.
func tcpInputs(data map[string]string, endpoints map[string]int) render.Inputs {
	var in render.Inputs
	for _, name := range slices.Sorted(maps.Keys(endpoints)) {
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "line", Port: 7000}}}})
		port, portName, ready := int32(endpoints[name]), "line", true
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		})
	}
	in.ConfigMaps = []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tcp"}, Data: data}}
	return in
}

// TCP services through HAProxy 2.6 and 3.0: a line protocol (not HTTP)
// carried both ways on one connection; PROXY v1 sent to a backend that
// reads it, naming the client's own address and port; on a listener with
// the third field, a PROXY v1 or v2 header from the client is required
// and its address is what the backend is told; an entry on the HTTP port
// reported and skipped while the others and HTTP keep working.
func TestTCPServices(t *testing.T) {
	for v, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+v, func(t *testing.T) {
			line := testenv.StartLineEcho(t, "line", false)
			pp := testenv.StartLineEcho(t, "pp", true)
			plain, send, both := freePort(t), freePort(t), freePort(t)
			httpPort, httpsPort := freePort(t), freePort(t)
			data := map[string]string{
				strconv.Itoa(plain):    "default/line:7000",
				strconv.Itoa(send):     "default/pp:line::PROXY",
				strconv.Itoa(both):     "default/pp:7000:PROXY:PROXY",
				strconv.Itoa(httpPort): "default/line:7000",
				"not-a-port":           "default/line:7000",
			}
			in := tcpInputs(data, map[string]int{"line": line.Port, "pp": pp.Port})
			opts := render.Options{TCPServicesConfigMap: "default/tcp", ReservedPorts: []render.ReservedPort{
				{Name: render.ListenerHTTP, Port: httpPort}, {Name: render.ListenerHTTPS, Port: httpsPort}}}
			m := render.BuildModel(in, opts)
			var reasons []string
			for _, p := range m.Problems {
				reasons = append(reasons, p.Field+" "+string(p.Reason))
			}
			want := []string{"data[" + strconv.Itoa(httpPort) + "] TCPServicePortConflict", "data[not-a-port] TCPServiceInvalid"}
			slices.Sort(reasons)
			if !slices.Equal(reasons, want) {
				t.Errorf("problems %q, want %q (%v)", reasons, want, m.Problems)
			}
			if len(m.TCPServices) != 3 {
				t.Fatalf("%d TCP services, want 3: %+v", len(m.TCPServices), m.TCPServices)
			}
			tmpl, err := templates.Load("")
			if err != nil {
				t.Fatal(err)
			}
			rc := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(httpPort), HTTPSBind: "127.0.0.1:" + strconv.Itoa(httpsPort)}
			out, err := haproxycfg.Render(m, rc)
			if err != nil {
				t.Fatal(err)
			}
			checkStructureConfig(t, out.Get(haproxycfg.ConfigFile), m, rc)
			dir := t.TempDir()
			writeFiles(t, dir, out)
			startHAProxy(t, bin, dir+"/haproxy.cfg", plain)
			addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

			// Several lines each way on one connection.
			c, err := testenv.DialLine(addr(plain), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, l := range []string{"hello", "PING", "GET / HTTP/1.1"} {
				if got, err := c.Say(l); err != nil || got != "line:"+l {
					t.Errorf("plain: %q answered %q, %v; want %q", l, got, err, "line:"+l)
				}
			}

			// PROXY v1 to the backend names the client as HAProxy saw it.
			c2, err := testenv.DialLine(addr(send), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			self := c2.LocalAddr().String()
			for _, l := range []string{"one", "two"} {
				if got, err := c2.Say(l); err != nil || got != "pp:"+self+":"+l {
					t.Errorf("send-proxy: %q answered %q, %v; want %q", l, got, err, "pp:"+self+":"+l)
				}
			}

			// The third field: the client's PROXY header (v1 or v2) is
			// decoded, and its address is sent on.
			dst := netip.MustParseAddrPort(addr(both))
			for name, header := range map[string][]byte{
				"v1": proxyV1(netip.MustParseAddrPort("198.51.100.7:5555"), dst),
				"v2": proxyV2(netip.MustParseAddrPort("[2001:db8::7]:6666"), netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), dst.Port())),
			} {
				wantSrc := map[string]string{"v1": "198.51.100.7:5555", "v2": "[2001:db8::7]:6666"}[name]
				if got, err := testenv.SayOnce(addr(both), header, "x"); err != nil || got != "pp:"+wantSrc+":x" {
					t.Errorf("accept-proxy %s: answered %q, %v; want %q", name, got, err, "pp:"+wantSrc+":x")
				}
			}
			// Without a header, the listener closes the connection and
			// the backend never hears of it.
			before := pp.Conns()
			if got, err := testenv.SayOnce(addr(both), nil, "no header"); err == nil {
				t.Errorf("accept-proxy without a header: answered %q", got)
			}
			time.Sleep(100 * time.Millisecond)
			if n := pp.Conns(); n != before {
				t.Errorf("accept-proxy without a header reached the backend (%d connections, was %d)", n, before)
			}

			// HTTP is served on its port, which the conflicting entry did
			// not take.
			if got, _ := newClient(httpPort, httpsPort).do(t, request{host: "nothing.test", path: "/"}); got != "status:404" {
				t.Errorf("HTTP port answered %q, want the 404 of no route", got)
			}
		})
	}
}

// The hostile corpus's values and suffixes as TCP services' values, and
// hostile keys: each one is refused with a warning naming the ConfigMap
// and its key, the one valid entry is served, and the configuration
// passes the oracle and haproxy -c of 2.6 and 3.0.
func TestHostileTCPServices(t *testing.T) {
	const valid = "default/line:7000"
	data := map[string]string{"9000": valid}
	port := 9001
	for _, v := range hostileValues() {
		data[strconv.Itoa(port)] = v
		port++
	}
	for _, s := range hostileSuffixes() {
		data[strconv.Itoa(port)] = valid + s
		port++
	}
	for _, k := range []string{"9000\nlua-load /x", " 9000", "+9000", "0x2328", "9000.0", "${PORT}", "../9000", "-1", "99999999999999999999"} {
		data[k] = valid
	}
	in := tcpInputs(data, map[string]int{"line": 7000})
	m := render.BuildModel(in, render.Options{TCPServicesConfigMap: "default/tcp"})
	if len(m.TCPServices) != 1 || m.TCPServices[0].Port != 9000 {
		t.Errorf("TCP services %+v, want only 9000", m.TCPServices)
	}
	refused := map[string]bool{}
	for _, p := range m.Problems {
		if p.Kind != "ConfigMap" || p.Name != "tcp" || p.Reason != render.TCPServiceInvalid {
			t.Errorf("unexpected problem %s", p.Report())
			continue
		}
		refused[p.Field] = true
	}
	if len(refused) != len(data)-1 {
		t.Errorf("%d entries refused, want %d", len(refused), len(data)-1)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rc := haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:80", HTTPSBind: "127.0.0.1:443"}
	out, err := haproxycfg.Render(m, rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := out.Get(haproxycfg.ConfigFile)
	checkStructureConfig(t, cfg, m, rc)
	for _, marker := range hostileMarkers {
		if bytes.Contains(cfg, []byte(marker)) {
			t.Errorf("haproxy.cfg holds %q", marker)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, out)
	for v, bin := range testenv.HAProxies(t) {
		if err := reload.Check(context.Background(), bin, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
			t.Errorf("haproxy %s -c: %v", v, err)
		}
	}
}
