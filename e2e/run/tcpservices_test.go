package run

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// tcpServicesConfigMap is the TCP services ConfigMap default/tcp-services
// with the given entries (port → value).
func tcpServicesConfigMap(entries map[int]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tcp-services\n  namespace: default\ndata:\n")
	for port, v := range entries {
		fmt.Fprintf(&b, "  %q: %q\n", strconv.Itoa(port), v)
	}
	return b.String()
}

// lineApp is a Service default/<name> with port 7000 ("line") whose one
// endpoint is the line server e on loopback.
func lineApp(name string, e *testenv.LineEcho) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: default
spec:
  ports:
  - name: line
    port: 7000
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-1
  namespace: default
  labels:
    kubernetes.io/service-name: %[1]s
addressType: IPv4
ports:
- name: line
  port: %[2]d
endpoints:
- addresses: ["127.0.0.1"]
`, name, e.Port)
}

// A TCP service (--tcp-services-configmap) carries a line protocol through
// HAProxy 2.6 and 3.0; its endpoint moving to another server goes through
// the runtime API: new connections reach the new endpoint, a connection
// opened before keeps its own, and HAProxy is not reloaded (its reload
// counter and worker stay). An entry with PROXY to the backend sends the
// client's address; an entry on the HTTP port is reported under its key
// and skipped while the others are served.
func TestRunTCPServiceEndpointChangeAtRunTime(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b := testenv.StartLineEcho(t, "a", false), testenv.StartLineEcho(t, "b", false)
		pp := testenv.StartLineEcho(t, "pp", true)
		ports := sidecartest.FreePorts(t, 2)
		linePort, ppPort := ports[0], ports[1]
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, TCPServicesConfigMap: "default/tcp-services"})
		addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
		entries := map[int]string{linePort: "default/line:7000", ppPort: "default/pp:line::PROXY", s.HTTPPort: "default/line:7000"}
		s.Write("tcp.yaml", tcpServicesConfigMap(entries)+"---\n"+lineApp("line", a)+"---\n"+lineApp("pp", pp))
		expectLine := func(port int, line, want string) {
			t.Helper()
			s.Eventually(10*time.Second, fmt.Sprintf("%q on port %d answered %q", line, port, want), func() error {
				got, err := testenv.SayOnce(addr(port), nil, line)
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("answered %q", got)
				}
				return nil
			})
		}
		expectLine(linePort, "hello", "a:hello")
		s.EventuallyProblem("ConfigMap default/tcp-services", "data["+strconv.Itoa(s.HTTPPort)+"]", "http listener")
		// HTTP keeps its port: the answer of no route.
		s.Expect("nothing.test", "/", "status:404")

		// PROXY v1 to the backend names the client's own address.
		c, err := testenv.DialLine(addr(ppPort), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := c.Say("x"); err != nil || got != "pp:"+c.LocalAddr().String()+":x" {
			t.Errorf("PROXY to the backend: answered %q, %v; want %q", got, err, "pp:"+c.LocalAddr().String()+":x")
		}

		// Let the first reload's old worker go away before counting.
		time.Sleep(200 * time.Millisecond)
		before := s.Procs()
		held, err := testenv.DialLine(addr(linePort), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if got, err := held.Say("before"); err != nil || got != "a:before" {
			t.Fatalf("held connection: %q, %v", got, err)
		}

		// The endpoint moves from a to b.
		s.Write("tcp.yaml", tcpServicesConfigMap(entries)+"---\n"+lineApp("line", b)+"---\n"+lineApp("pp", pp))
		expectLine(linePort, "hello", "b:hello")
		if got, err := held.Say("after"); err != nil || got != "a:after" {
			t.Errorf("the connection opened before the change: %q, %v; want it still on a", got, err)
		}
		after := s.Procs()
		if after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
			t.Errorf("HAProxy was reloaded: reloads %d -> %d, worker %d -> %d",
				before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
		}
		s.Eventually(5*time.Second, "the runtime update logged", func() error {
			if n := s.LogCount("updated HAProxy at run time"); n < 1 {
				return fmt.Errorf("%d logged", n)
			}
			return nil
		})
	})
}
