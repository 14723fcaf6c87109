package reload

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// "set server ... fqdn" through the master CLI, on 2.6 and 3.0: HAProxy
// answers a sentence Send accepts, keeps the server's address until the
// new name resolves (requests never fail), then sends requests to what
// the DNS says of the new name. The DNS server is the test's own, on
// loopback.
func TestSendServerFQDN(t *testing.T) {
	dns := testenv.StartDNSServer(t, "127.0.0.1:0")
	dns.Set("a.fqdn-test.example.com", netip.MustParseAddr("127.0.0.2"))
	dns.Set("b.fqdn-test.example.com", netip.MustParseAddr("127.0.0.3"))
	port := echoPair(t, "127.0.0.2", "127.0.0.3")
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		hp := freePort(t)
		cfg := fmt.Sprintf(`global
    default-path config
resolvers dns
    nameserver ns1 %s
    timeout resolve 1s
    hold valid 1s
    hold obsolete 0s
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    option http-server-close
    server s1 a.fqdn-test.example.com:%d id 1 resolvers dns init-addr none resolve-prefer ipv4
`, dns.Addr, hp, port)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg)})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		get := func() string {
			c := &http.Client{Timeout: 2 * time.Second}
			r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", hp))
			if err != nil {
				return err.Error()
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			if r.StatusCode != 200 {
				return r.Status
			}
			return string(b)
		}
		waitFor := func(want string, before ...string) {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for {
				got := get()
				if got == want {
					return
				}
				ok := false
				for _, b := range before {
					ok = ok || got == b
				}
				if !ok || time.Now().After(deadline) {
					t.Fatalf("got %q waiting for %q", got, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		waitFor("a", "503 Service Unavailable")
		var b Batch
		b.SetServerFQDN("be", "s1", "b.fqdn-test.example.com")
		if err := sup.CLI().Send(ctx, &b); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor("b", "a")
		t.Logf("on the new name's address %v after the command", time.Since(start).Round(time.Millisecond))

		// A bad name is refused by the batch, never sent.
		var bad Batch
		bad.SetServerFQDN("be", "s1", "x\nshutdown sessions")
		if bad.Err() == nil {
			t.Error("a name with a newline was accepted")
		}
	})
}

// echoPair serves "a" on addrA and "b" on addrB, on one port.
func echoPair(t *testing.T, addrA, addrB string) int {
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
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both addresses")
	return 0
}
