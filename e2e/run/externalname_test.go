package run

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// An ExternalName Service served by `run`, HAProxy's resolvers asking a
// DNS server the test runs on loopback (the dns-nameservers setting):
// a change of the DNS answer moves traffic with nothing from the sidecar,
// a change of spec.externalName is a runtime "set server ... fqdn" (no
// reload), and no request of a steady poll fails through either.
func TestRunExternalName(t *testing.T) {
	dns := testenv.StartDNSServer(t, "127.0.0.1:0")
	port := runEchoPair(t, "127.0.0.2", "127.0.0.3")
	forEachHAProxy(t, func(t *testing.T, bin string) {
		dns.Set("partner.ext-run.example.com", netip.MustParseAddr("127.0.0.2"))
		dns.Set("partner2.ext-run.example.com", netip.MustParseAddr("127.0.0.3"))
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, Args: []string{"--configmap", "default/lb"}})
		s.Write("class.yaml", ingressClass)
		s.Write("lb.yaml", fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lb}\ndata:\n  dns-nameservers: %q\n", dns.Addr.String()))
		s.Write("partner.yaml", externalService("partner.ext-run.example.com", port)+"---\n"+ingress("ext", "ext.test", "/", "partner"))
		s.ExpectWithin(20*time.Second, "ext.test", "/", "svc:a")
		time.Sleep(200 * time.Millisecond) // the first reload's old worker goes away
		before := s.Procs()
		p := sidecartest.StartPoller(t, s.HTTPPort, "ext.test", "/", "svc:a", "svc:b")

		// The DNS moves the name: nothing to render, HAProxy follows.
		dns.Set("partner.ext-run.example.com", netip.MustParseAddr("127.0.0.3"))
		moved := time.Now()
		s.ExpectWithin(20*time.Second, "ext.test", "/", "svc:b")
		t.Logf("DNS change served after %v", time.Since(moved).Round(time.Millisecond))

		// The Service names another name (which the DNS gives A): sent as
		// the name, at run time.
		s.Write("partner.yaml", externalService("partner2.ext-run.example.com", port)+"---\n"+ingress("ext", "ext.test", "/", "partner"))
		dns.Set("partner2.ext-run.example.com", netip.MustParseAddr("127.0.0.2"))
		renamed := time.Now()
		s.ExpectWithin(20*time.Second, "ext.test", "/", "svc:a")
		t.Logf("new externalName served after %v", time.Since(renamed).Round(time.Millisecond))
		p.ExpectNone(t, "both addresses serve throughout")

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
		// The files on disk hold the new name: a restart serves it.
		s.killHAProxy()
		s.ExpectWithin(20*time.Second, "ext.test", "/", "svc:a")
	})
}

// externalService is ExternalName Service "partner" for name, with port
// "http" (the name sidecartest.Ingress routes to).
func externalService(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: partner}
spec:
  type: ExternalName
  externalName: %s
  ports:
  - {name: http, port: %d}
`, name, port)
}

// runEchoPair serves "svc:a" on addrA and "svc:b" on addrB, on one port.
func runEchoPair(t *testing.T, addrA, addrB string) int {
	t.Helper()
	for range 20 {
		la, err := net.Listen("tcp", addrA+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := la.Addr().(*net.TCPAddr).Port
		lb, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addrB, port))
		if err != nil {
			la.Close()
			continue
		}
		for ln, name := range map[net.Listener]string{la: "a", lb: "b"} {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "svc:"+name) })}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both addresses")
	return 0
}
