package render_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	parser "github.com/haproxytech/client-native/v6/config-parser"
	"github.com/haproxytech/client-native/v6/config-parser/options"
	"github.com/haproxytech/client-native/v6/config-parser/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// startHostileTLSEcho serves "svc:hostile-tls" over TLS (HTTP/1.1 and h2)
// with the given certificate, on a free loopback port.
func startHostileTLSEcho(t *testing.T, certPEM, keyPEM []byte) int {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "svc:hostile-tls") })}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// checkHostileText checks a text file line by line as HAProxy tokenizes
// it: no hostile marker outside single quotes, and no sample expression
// other than the template's own.
func checkHostileText(t *testing.T, path string, data []byte, isConfig bool) {
	t.Helper()
	allowedFetch := []string{"var(txn.https)]", "var(txn.host)]", "pathq]", "var(txn.backend)]", "var(txn.cors_origin)]", "var(txn.extauth_location)]", "var(txn.extauth_www)]"}
	for i, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("%s:%d", path, i+1)
		if strings.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
			t.Errorf("%s: control character in %q", where, hShort(line))
		}
		if isConfig && line == "    lua-load "+haproxycfg.ExtAuthScriptFile {
			continue // the template's own line, for external authentication
		}
		bare, ok := haproxyUnquoted(line)
		// Outside quotes a backslash only escapes the single quote of a
		// quoted argument ('a'\''b').
		bare = strings.ReplaceAll(bare, `\'`, " ")
		if !ok {
			t.Errorf("%s: unterminated quote in %q", where, hShort(line))
		}
		for _, mk := range hostileMarkers {
			if strings.Contains(bare, mk) {
				t.Errorf("%s: %q outside single quotes in %q", where, mk, hShort(line))
			}
		}
		// "%[" starts a sample expression unless the '%' is itself
		// escaped: an odd run of '%' before '['. Maps and the crt-list
		// hold no log-format, so only haproxy.cfg may have any.
		// The realm of http-request auth is a plain string, not a
		// log-format (checked on 2.6 and 3.0): its argument is skipped.
		fmtText := line
		if rest, ok := strings.CutPrefix(strings.TrimLeft(line, " "), "http-request auth realm "); ok && isConfig {
			fmtText = skipHAProxyWord(rest)
		}
		line := fmtText
		for j := strings.Index(line, "%["); j >= 0; {
			run := 1
			for k := j - 1; k >= 0 && line[k] == '%'; k-- {
				run++
			}
			if run%2 == 1 {
				rest := line[j+2:]
				if !isConfig || !slices.ContainsFunc(allowedFetch, func(f string) bool { return strings.HasPrefix(rest, f) }) {
					t.Errorf("%s: sample expression %q in %q", where, hShort(line[j:]), hShort(line))
				}
			}
			k := strings.Index(line[j+2:], "%[")
			if k < 0 {
				break
			}
			j += 2 + k
		}
	}
}

// haproxyUnquoted returns a configuration line's text that HAProxy reads
// outside single quotes (where '$' expands and '#' comments), the comment
// dropped; ok is false for an unterminated quote.
func haproxyUnquoted(line string) (string, bool) {
	var b strings.Builder
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
			b.WriteByte(' ')
		case c == '\\' && i+1 < len(line):
			b.WriteByte(c)
			b.WriteByte(line[i+1])
			i++
		case quote == '"':
			if c == '"' {
				quote = 0
			}
			b.WriteByte(c)
		case c == '\'' || c == '"':
			quote = c
			if c == '"' {
				b.WriteByte(c)
			}
		case c == '#':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), quote == 0
}

// skipHAProxyWord returns what follows the first word of s, that word
// read as HAProxy reads one (quotes and backslash escapes).
func skipHAProxyWord(s string) string {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == ' ' || c == '\t':
			return s[i:]
		}
	}
	return ""
}

// checkHostilePEM: a PEM file is certificates and at most a key, nothing
// around them.
func checkHostilePEM(t *testing.T, path string, data []byte) {
	t.Helper()
	rest := data
	for len(strings.TrimSpace(string(rest))) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || (b.Type != "CERTIFICATE" && !strings.HasSuffix(b.Type, "PRIVATE KEY")) || len(b.Headers) > 0 {
			t.Errorf("%s: not only certificates and a key", path)
			return
		}
	}
	if !strings.HasPrefix(string(data), "-----BEGIN ") {
		t.Errorf("%s: text before the first PEM block", path)
	}
}

// checkHostileStructure parses haproxy.cfg with client-native's
// config-parser: no line it does not recognise in any section, the
// sections outside backends and userlists exactly the template's, and in
// backends only the directives annotations produce.
func checkHostileStructure(t *testing.T, cfg []byte, m *render.Model, rc haproxycfg.Config) {
	t.Helper()
	p, err := parser.New(options.String(string(cfg)))
	if err != nil {
		t.Fatalf("config-parser: %v", err)
	}
	for _, s := range []parser.Section{parser.Global, parser.Defaults, parser.Frontends, parser.Backends, parser.UserList} {
		names, _ := p.SectionsGet(s)
		for _, name := range names {
			data, err := p.Get(s, name, "")
			if err != nil {
				continue
			}
			if un, ok := data.(*[]types.UnProcessed); ok && len(*un) > 0 {
				t.Errorf("%s %s: unrecognised lines %v", s, name, *un)
			} else if un, ok := data.([]types.UnProcessed); ok && len(un) > 0 {
				t.Errorf("%s %s: unrecognised lines %v", s, name, un)
			}
		}
	}
	for _, s := range []parser.Section{parser.Listen, parser.Resolvers, parser.Peers, parser.Mailers, parser.Cache, parser.Program} {
		if names, _ := p.SectionsGet(s); len(names) > 0 {
			t.Errorf("unexpected %s sections %q", s, names)
		}
	}
	base := sectionDirectives(string(baselineConfig(t, m, rc)))
	backendDirective := regexp.MustCompile(`^((balance|hash-type|server|timeout|option httpchk|cookie|http-request|http-response|http-after-response (replace-header Set-Cookie|set-header|del-header)|acl|stick-table) |option redispatch$)`)
	for section, dirs := range sectionDirectives(string(cfg)) {
		switch {
		case strings.HasPrefix(section, "userlist "):
			for _, d := range dirs {
				if !strings.HasPrefix(d, "user ") {
					t.Errorf("%s: unexpected directive %q", section, hShort(d))
				}
			}
		case strings.HasPrefix(section, "backend ") && section != "backend "+render.NotFoundBackend && section != "backend "+render.UnavailableBackend:
			for _, d := range dirs {
				if !backendDirective.MatchString(d) || strings.HasPrefix(d, "http-request lua.") && !extAuthAction.MatchString(d) {
					t.Errorf("%s: unexpected directive %q", section, hShort(d))
				}
			}
		case section == "frontend ingress":
			// Canary rules and regular-expression routing, in their one shape,
			// are what annotations add.
			kept := slices.DeleteFunc(slices.Clone(dirs), routingRule)
			if !slices.Equal(kept, base[section]) {
				t.Errorf("%s differs from the template's (canary rules aside):\n got %q\nwant %q", section, hShortAll(kept), hShortAll(base[section]))
			}
		case section == "global" && usesExtAuth(m):
			kept := slices.DeleteFunc(slices.Clone(dirs), func(d string) bool {
				return luaMaxMem.MatchString(d) || d == "lua-load "+haproxycfg.ExtAuthScriptFile
			})
			if len(kept) != len(dirs)-2 || !slices.Equal(kept, base[section]) {
				t.Errorf("%s differs from the template's (the external authentication script aside):\n got %q\nwant %q", section, dirs, base[section])
			}
		case !slices.Equal(dirs, base[section]):
			t.Errorf("%s differs from the template's:\n got %q\nwant %q", section, dirs, base[section])
		}
	}
}

// canaryRule is the one shape of a frontend line a canary adds.
var canaryRule = regexp.MustCompile(`^http-request set-var\(txn\.backend\) str\([A-Za-z0-9_.:-]+\) if \{ var\(txn\.backend\) -m str [A-Za-z0-9_.:-]+~[A-Za-z0-9_.:-]+ \}` +
	`( \{ req\.(hdr|cook)\([A-Za-z0-9_.-]+\) -m str (always|never) \}| \{ req\.hdr\([A-Za-z0-9_.-]+\),strcmp\(txn\.canary_hv\) eq 0 \}| \{ rand\([0-9]+\),sub\(txn\.canary_w\) -m int lt 0 \})?$|` +
	// The lines that read the pair's weight and header value (the
	// template's, with any canary).
	`^http-request set-var\(txn\.canary(_w|_hv)?\) var\(txn\.(backend|canary)\),(map_str\(maps/canary\.map\)|field\([12],\|\)) if \{ var\(txn\.(backend\) -m sub ~|canary\) -m found) \}$`)

func hShort(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func hShortAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = hShort(s)
	}
	return out
}

func hStatus(r *http.Response) string {
	if r == nil {
		return "no response"
	}
	return r.Status
}

func hHeader(r *http.Response, k string) string {
	if r == nil {
		return ""
	}
	return r.Header.Get(k)
}

func hPtr[T any](v T) *T { return &v }
