package haproxycfg

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// quoteRoundTrip are the strings HAProxy must read back exactly through
// quoteArg and quoteLogFormat.
var quoteRoundTrip = []string{
	"plain",
	"a b  c",
	"#",
	"a #comment",
	"'",
	"''",
	`"`,
	`a'b"c`,
	`\`,
	`\\`,
	`a\'b`,
	`'\''`,
	`\x41\n`,
	"$HOME",
	"${HOME}",
	`"${HOME}"`,
	"$",
	"%",
	"%%",
	"100%",
	"%[env(HOME)]",
	"%%[env(HOME)]",
	"%{+Q}o",
	"%H %ci",
	"{",
	"}",
	"} lua-load /tmp/x.lua {",
	"if { path / }",
	"/app\uff0f..\uff0fetc",
	"ex\u0430mple.com",
	"abc\u202edef",
	"\u00e9\u4e2d\U0001F600",
}

// TestQuoteArgRoundTrip has a real HAProxy (2.6 and 3.0) read back every
// quoted string: quoteLogFormat as a response header's value (a
// log-format, in http-request return and in http-response set-header) and
// quoteArg as the pattern an exact string match compares a request header
// with. It also checks that what no quoting carries is refused.
func TestQuoteArgRoundTrip(t *testing.T) {
	// The empty string too: HAProxy reads '' as no argument.
	for _, s := range []string{"", "\x00", "a\x00b", "\r", "a\rb", "\n", "a\nb", "\t", "a\tb", "\x01", "\x1b[31m", "\x7f", "\r\n"} {
		if q, err := quoteArg(s); err == nil {
			t.Errorf("quoteArg(%q) = %q, want an error", s, q)
		}
		if q, err := quoteLogFormat(s); err == nil {
			t.Errorf("quoteLogFormat(%q) = %q, want an error", s, q)
		}
	}

	echo := startQuoteEcho(t)
	port := testenv.FreePort(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend f
    bind 127.0.0.1:%d
    http-request set-var(txn.p) path
`, port)
	for i, s := range quoteRoundTrip {
		lf, err := quoteLogFormat(s)
		if err != nil {
			t.Fatalf("quoteLogFormat(%q): %v", s, err)
		}
		arg, err := quoteArg(s)
		if err != nil {
			t.Fatalf("quoteArg(%q): %v", s, err)
		}
		fmt.Fprintf(&cfg, "    http-request return status 200 hdr X-Echo %s if { path /return/%d }\n", lf, i)
		// A named acl: inside an anonymous "{ ... }" condition HAProxy
		// takes an argument that reads as "{" or "}" for a brace, quoted
		// or not.
		fmt.Fprintf(&cfg, "    acl m%d req.hdr(x-in) -m str %s\n", i, arg)
		fmt.Fprintf(&cfg, "    http-request return status 204 if { path /match/%d } m%d\n", i, i)
		fmt.Fprintf(&cfg, "    http-response set-header X-Echo %s if { var(txn.p) -m str /set/%d }\n", lf, i)
	}
	fmt.Fprintf(&cfg, `    http-request return status 404 unless { path_beg /set/ }
    default_backend echo

backend echo
    server s1 127.0.0.1:%d
`, echo)
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	for version, bin := range testenv.HAProxies(t) {
		t.Run("haproxy-"+version, func(t *testing.T) {
			if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			testenv.StartHAProxy(t, bin, path, port)
			for i, s := range quoteRoundTrip {
				for _, kind := range []string{"return", "set"} {
					code, hdr := quoteGet(t, port, "/"+kind+"/"+strconv.Itoa(i), "")
					if code != 200 || hdr == nil || *hdr != s {
						t.Errorf("%s: X-Echo of %q: status %d, header %s", kind, s, code, quoteShow(hdr))
					}
				}
				// A header value cannot hold leading or trailing white
				// space.
				if strings.TrimSpace(s) != s {
					continue
				}
				if code, _ := quoteGet(t, port, "/match/"+strconv.Itoa(i), s); code != 204 {
					t.Errorf("quoteArg(%q) does not match the same header value: status %d", s, code)
				}
				if code, _ := quoteGet(t, port, "/match/"+strconv.Itoa(i), s+"x"); code != 404 {
					t.Errorf("quoteArg(%q) matches another value: status %d", s, code)
				}
			}
		})
	}
}

func quoteShow(h *string) string {
	if h == nil {
		return "missing"
	}
	return strconv.Quote(*h)
}

// quoteGet sends a raw request (so that any byte reaches HAProxy as it
// is) and returns the status and the raw X-Echo value, nil when absent.
func quoteGet(t *testing.T, port int, path, xIn string) (int, *string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: q\r\nConnection: close\r\n"
	if xIn != "" {
		req += "X-In: " + xIn + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		t.Fatalf("%s: status line %q", path, status)
	}
	code, _ := strconv.Atoi(f[1])
	var echo *string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "x-echo") {
			// HTTP allows optional white space after the colon; HAProxy
			// writes exactly one space.
			v = strings.TrimPrefix(v, " ")
			echo = &v
		}
	}
	return code, echo
}

func startQuoteEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "echo") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// A value no parser refused but HAProxy cannot read (a bug in a parser)
// fails closed: the backend answers 503 and the canary keeps the primary,
// instead of a panic taking the sidecar down.
func TestUnquotableValueFailsClosed(t *testing.T) {
	be := &render.Backend{Name: "default_web_80:x", Namespace: "default", Service: "web", Port: 80, Slots: 4, SlotAddrs: make([]netip.AddrPort, 4),
		Ingress: "x", Policy: &render.RoutePolicy{AppRoot: "/a\nb"}}
	bd := backendData(be)
	if !slices.Equal(bd.Directives, []string{"http-request deny deny_status 503"}) || bd.Balance != "roundrobin" {
		t.Errorf("directives %q, balance %q; want only the 503 deny", bd.Directives, bd.Balance)
	}
	m := &render.Model{Routes: []*render.Route{{Backend: "p", Canary: &render.Canary{Backend: "c", Rule: &render.CanaryRule{Header: "X", HeaderValue: "a\x00", WeightTotal: 100}}}}}
	g := CanaryGroups(m)
	// No header rule, and the weight line reads weight 0: the primary
	// takes every request.
	if len(g) != 1 || !slices.Equal(g[0].Rules, []string{
		"http-request set-var(txn.backend) str(c) if { var(txn.backend) -m str p~c } { rand(100),sub(txn.canary_w) -m int lt 0 }",
		"http-request set-var(txn.backend) str(p) if { var(txn.backend) -m str p~c }"}) || g[0].MapValue != "0|" {
		t.Errorf("canary rules %q, map value %q, want only the primary", g[0].Rules, g[0].MapValue)
	}
}
