package render_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	parser "github.com/haproxytech/client-native/v6/config-parser"
	"github.com/haproxytech/client-native/v6/config-parser/options"
	"github.com/haproxytech/client-native/v6/config-parser/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// checkStructure parses a rendered haproxy.cfg with client-native's
// config-parser, independently of the template, and accounts for every
// section and directive: exactly the sections the model calls for, no line
// the parser does not recognise, each backend with exactly its servers,
// and a round trip through the parser that loses or adds no directive.
// Text injected through an object would show up as one of these.
func checkStructure(t testing.TB, cfg []byte, m *render.Model) {
	t.Helper()
	checkStructureConfig(t, cfg, m, haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443"})
}

// checkStructureConfig is checkStructure for a configuration rendered with
// rc (its binds and stats frontend; the template is the embedded one).
func checkStructureConfig(t testing.TB, cfg []byte, m *render.Model, rc haproxycfg.Config) {
	t.Helper()
	p, err := parser.New(options.String(string(cfg)))
	if err != nil {
		t.Fatalf("config-parser: %v", err)
		return
	}

	sectionNames := func(s parser.Section) []string {
		names, err := p.SectionsGet(s)
		if err != nil {
			return nil
		}
		slices.Sort(names)
		return names
	}
	wantBackends := []string{render.NotFoundBackend, render.UnavailableBackend}
	for _, be := range m.Backends {
		wantBackends = append(wantBackends, be.Name)
	}
	if len(m.Passthrough) > 0 {
		// TLS passthrough's two TCP backends (haproxycfg/passthrough.go).
		wantBackends = append(wantBackends, "_tls_terminate", "_tls_unavailable")
	}
	slices.Sort(wantBackends)
	if got := sectionNames(parser.Backends); !slices.Equal(got, wantBackends) {
		t.Errorf("backend sections %q, want %q", got, wantBackends)
	}
	wantFrontends := []string{"ingress"}
	if rc.StatsBind != "" {
		wantFrontends = append(wantFrontends, "stats")
	}
	tcpFrontends := map[string]render.TCPService{}
	for _, ts := range m.TCPServices {
		name := "tcp_" + strconv.Itoa(ts.Port)
		wantFrontends = append(wantFrontends, name)
		tcpFrontends["frontend "+name] = ts
	}
	if len(m.Passthrough) > 0 {
		wantFrontends = append(wantFrontends, "https_passthrough")
	}
	slices.Sort(wantFrontends)
	if got := sectionNames(parser.Frontends); !slices.Equal(got, wantFrontends) {
		t.Errorf("frontend sections %q, want %q", got, wantFrontends)
	}
	// Userlists only for backends with auth-basic-secret.
	var wantUserlists []string
	plain, tcp := map[string]bool{}, map[string]bool{}
	for _, be := range m.Backends {
		tcp[be.Name] = be.TCP
		if be.Policy != nil && be.Policy.AuthSecret != "" {
			wantUserlists = append(wantUserlists, "auth_"+strings.ReplaceAll(be.Name, ":", "_"))
		}
		plain[be.Name] = be.Policy == nil && be.Settings == (render.BackendSettings{}) && !be.Broken
	}
	slices.Sort(wantUserlists)
	if got := sectionNames(parser.UserList); !slices.Equal(got, wantUserlists) {
		t.Errorf("userlist sections %q, want %q", got, wantUserlists)
	}
	// One resolvers section, only when a backend resolves a name.
	var wantResolvers []string
	if slices.ContainsFunc(m.Backends, (*render.Backend).Resolves) {
		wantResolvers = []string{render.ResolversName}
	}
	if got := sectionNames(parser.Resolvers); !slices.Equal(got, wantResolvers) {
		t.Errorf("resolvers sections %q, want %q", got, wantResolvers)
	}
	for _, s := range []parser.Section{parser.Listen, parser.Peers, parser.Mailers,
		parser.Cache, parser.Program, parser.HTTPErrors, parser.Ring, parser.LogForward, parser.FCGIApp, parser.CrtStore,
		parser.Traces, parser.LogProfile, parser.Acme} {
		if got := sectionNames(s); len(got) > 0 {
			t.Errorf("unexpected %s sections %q", s, got)
		}
	}

	// No line the parser did not recognise, in any section, but the
	// conditional block of an ExternalName backend for HAProxy before
	// 3.0 (the parser does not know conditional blocks).
	resolving := map[string]bool{}
	for _, be := range m.Backends {
		resolving[be.Name] = be.Resolves()
	}
	for _, s := range []parser.Section{parser.Global, parser.Defaults, parser.Frontends, parser.Backends, parser.UserList} {
		for _, name := range sectionNames(s) {
			if data, err := p.Get(s, name, ""); err == nil {
				var un []types.UnProcessed
				if u, ok := data.(*[]types.UnProcessed); ok {
					un = *u
				} else if u, ok := data.([]types.UnProcessed); ok {
					un = u
				}
				if s == parser.Backends && resolving[name] {
					un = slices.DeleteFunc(slices.Clone(un), func(u types.UnProcessed) bool {
						return u.Value == externalBefore30[0] || u.Value == externalBefore30[2]
					})
				}
				if len(un) > 0 {
					t.Errorf("%s %s: unrecognised lines %v", s, name, un)
				}
			}
		}
	}

	// Every backend has exactly its slots, with the model's addresses.
	for _, be := range m.Backends {
		data, err := p.Get(parser.Backends, be.Name, "server")
		if err != nil && be.Slots == 0 {
			continue // a refused ExternalName: no server at all
		}
		if err != nil {
			t.Errorf("backend %s: no servers: %v", be.Name, err)
			continue
		}
		servers := data.([]types.Server)
		if be.Resolves() {
			// The one server is the name, on HAProxy's resolvers.
			var opts []string
			if len(servers) == 1 {
				for _, o := range servers[0].Params {
					opts = append(opts, o.String())
				}
			}
			if len(servers) != 1 || servers[0].Address != be.ExternalName+":"+strconv.Itoa(int(be.ExternalPort)) ||
				!slices.Contains(opts, "resolvers "+render.ResolversName) || !slices.Contains(opts, "init-addr none") {
				t.Errorf("backend %s: servers %+v, want %s:%d on resolvers %s", be.Name, servers, be.ExternalName, be.ExternalPort, render.ResolversName)
			}
		}
		if len(servers) != be.Slots {
			t.Errorf("backend %s: %d servers, want %d slots", be.Name, len(servers), be.Slots)
		}
		for i, s := range servers {
			if i < len(be.Servers) && s.Address != be.Servers[i].String() {
				t.Errorf("backend %s server %d: address %q, want %q", be.Name, i+1, s.Address, be.Servers[i])
			}
			if s.Name != "s"+strconv.Itoa(i+1) {
				t.Errorf("backend %s server %d: name %q", be.Name, i+1, s.Name)
			}
		}
	}

	// Round trip: the parser writes back the same directives (in its own
	// order), so nothing was swallowed into another directive's arguments.
	got, want := sectionDirectives(p.String()), sectionDirectives(string(cfg))
	// The parser writes server and cookie options in its own order.
	sorted := func(s []string) []string {
		out := make([]string, len(s))
		for i, d := range s {
			if f := strings.Fields(d); f[0] == "server" && len(f) > 3 {
				opts := slices.Sorted(slices.Values(f[3:]))
				d = strings.Join(append(f[:3:3], opts...), " ")
			} else if f[0] == "cookie" && len(f) > 2 {
				opts := slices.Sorted(slices.Values(f[2:]))
				d = strings.Join(append(f[:2:2], opts...), " ")
			}
			out[i] = d
		}
		return slices.Sorted(slices.Values(out))
	}
	if !maps.EqualFunc(got, want, func(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }) {
		t.Errorf("config-parser does not write back the same directives:\n got %q\nwant %q", got, want)
	}

	// Objects reach only the backends, the default_backend line and the
	// maps: every other section is exactly what the template gives an
	// empty model, and a Service backend holds only its servers.
	base := sectionDirectives(string(baselineConfig(t, m, rc)))
	for section, dirs := range want {
		name, isBackend := strings.CutPrefix(section, "backend ")
		switch {
		case isBackend && name != render.NotFoundBackend && name != render.UnavailableBackend && !strings.HasPrefix(name, "_tls_"):
			if resolving[name] {
				// Its one conditional block, whole and once.
				if i := slices.Index(dirs, externalBefore30[0]); i < 0 || len(dirs) < i+3 || !slices.Equal(dirs[i:i+3], externalBefore30) {
					t.Errorf("%s: no block %q in %q", section, externalBefore30, dirs)
				} else {
					dirs = slices.Delete(slices.Clone(dirs), i, i+3)
				}
			}
			for _, d := range dirs {
				if plain[name] && d != "balance roundrobin" && !strings.HasPrefix(d, "server ") && !(tcp[name] && d == "mode tcp") {
					t.Errorf("%s: unexpected directive %q", section, d)
				}
				// With annotations: only the directives they produce.
				if strings.HasPrefix(d, "http-request lua.") && !extAuthAction.MatchString(d) {
					t.Errorf("%s: unexpected Lua action %q", section, d)
				}
				if !plain[name] && !annotationDirective.MatchString(d) {
					t.Errorf("%s: unexpected directive %q", section, d)
				}
			}
		case section == "resolvers "+render.ResolversName:
			// The nameservers (the dns-nameservers setting) or the pod's,
			// then fixed timings.
			for _, d := range dirs {
				if !resolversDirective.MatchString(d) {
					t.Errorf("%s: unexpected directive %q", section, d)
				}
			}
		case strings.HasPrefix(section, "userlist "):
			for _, d := range dirs {
				if !strings.HasPrefix(d, "user ") {
					t.Errorf("%s: unexpected directive %q", section, d)
				}
			}
		case tcpFrontends[section].Backend != "":
			// A TCP service: its port, its backend, PROXY decoding
			// from the settings' addresses; nothing else.
			ts := tcpFrontends[section]
			for _, d := range dirs {
				if !tcpFrontendDirective.MatchString(d) {
					t.Errorf("%s: unexpected directive %q", section, d)
				}
				if strings.HasPrefix(d, "bind ") && !strings.HasSuffix(d, ":"+strconv.Itoa(ts.Port)) {
					t.Errorf("%s: %q, want port %d", section, d, ts.Port)
				}
				if strings.HasPrefix(d, "default_backend ") && d != "default_backend "+ts.Backend {
					t.Errorf("%s: %q, want backend %s", section, d, ts.Backend)
				}
			}
			if got := slices.Contains(dirs, "tcp-request connection expect-proxy layer4"); got != ts.AcceptProxy {
				t.Errorf("%s: expect-proxy %v, want %v", section, got, ts.AcceptProxy)
			}
		case section == "frontend ingress":
			// Canary rules and regular-expression routing, in their one shape,
			// are what annotations add.
			if kept := slices.DeleteFunc(slices.Clone(dirs), routingRule); !slices.Equal(kept, base[section]) {
				t.Errorf("%s differs from the template's (canary rules aside):\n got %q\nwant %q", section, kept, base[section])
			}
		case section == "global" && usesExtAuth(m):
			// External authentication adds its Lua script, and only that.
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

// usesExtAuth: some backend asks an auth service.
func usesExtAuth(m *render.Model) bool {
	for _, be := range m.Backends {
		if p := be.Policy; p != nil && p.ExtAuth != nil && len(p.Closed) == 0 && be.ExtAuthBackend != "" {
			return true
		}
	}
	return false
}

// extAuthAction is the one shape of the external authentication action:
// the action's name and its eight arguments, each strongly quoted.
var extAuthAction = regexp.MustCompile(`^http-request lua\.haproxy_sidecar_extauth( '[^'\\]*'){8}$`)

// externalBefore30 is the block an ExternalName backend has for HAProxy
// before 3.0, which keeps a server connection to an address the DNS no
// longer gives.
var externalBefore30 = []string{".if version_before(3.0)", "option http-server-close", ".endif"}

// resolversDirective is what the resolvers section holds: nameservers
// from a parsed address and port, or the pod's, and fixed timings.
var resolversDirective = regexp.MustCompile(`^(nameserver ns[0-9] ([0-9.]+|\[[0-9a-f:.]+\]):[0-9]+|parse-resolv-conf|accepted_payload_size 8192|resolve_retries 3|timeout (resolve|retry) [0-9]+ms|hold (valid|nx|refused|timeout|other|obsolete) [0-9]+ms)$`)

// luaMaxMem is the Lua memory cap external authentication sets.
var luaMaxMem = regexp.MustCompile(`^tune\.lua\.maxmem [0-9]+$`)

// annotationDirective is what a backend with annotations may hold.
var annotationDirective = regexp.MustCompile(`^(balance (roundrobin|leastconn|random|source|uri|uri path-only|hdr\([A-Za-z0-9_.-]+\)|hash req\.cook\([A-Za-z0-9_.-]+\)|url_param [A-Za-z0-9_.-]+)$|hash-type consistent$|option redispatch$|server s[0-9]+ |timeout (connect|server|queue|tunnel) [0-9]+m?s$|option httpchk GET '|cookie [A-Za-z0-9_-]+ insert |http-request |http-response |http-after-response replace-header Set-Cookie '\^\([A-Za-z0-9_-]+=\.\*\)\$' '\\1; Secure' if \{ ssl_fc \}$|http-after-response (set|del)-header '[A-Za-z0-9_.-]+'( |$)|acl [a-z_]+ |stick-table type ipv6 |mode tcp$)`)

// tcpFrontendDirective is what a TCP service's frontend may hold.
var tcpFrontendDirective = regexp.MustCompile(`^(mode tcp|option tcplog|bind [0-9a-f.:\[\]]*:[0-9]+|acl proxy_protocol_peer src [0-9a-f.:/ ]+|tcp-request connection reject unless proxy_protocol_peer|tcp-request connection expect-proxy layer4|default_backend _tcp_[0-9]+)$`)

// baselineConfig renders an empty model with the same default backend and
// the same settings: the part of the configuration that comes from the
// template and the settings ConfigMap alone. The settings are validated
// values (render.Settings), so comparing with them still catches any text
// an object managed to inject.
func baselineConfig(t testing.TB, m *render.Model, rc haproxycfg.Config) []byte {
	t.Helper()
	empty := render.BuildModel(render.Inputs{}, render.Options{})
	empty.DefaultBackend = m.DefaultBackend
	empty.Settings = m.Settings
	// Passthrough's sections depend only on there being some.
	empty.Passthrough = m.Passthrough
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rc.Template = tmpl
	out, err := haproxycfg.Render(empty, rc)
	if err != nil {
		t.Fatal(err)
	}
	return out.Get(haproxycfg.ConfigFile)
}

// sectionDirectives maps each section header to its directives, comments
// dropped and white space folded. Headers lose the defaults-section names
// the parser gives to unnamed defaults ("defaults unnamed_defaults_1",
// "backend x from unnamed_defaults_1").
func sectionDirectives(cfg string) map[string][]string {
	out := map[string][]string{}
	section := ""
	for _, l := range strings.Split(cfg, "\n") {
		indented := strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
		l = strings.Join(strings.Fields(l), " ")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !indented {
			if strings.HasPrefix(l, "defaults") {
				l = "defaults"
			}
			section, _, _ = strings.Cut(l, " from ")
			out[section] = []string{}
			continue
		}
		out[section] = append(out[section], l)
	}
	return out
}

// recorder collects what checkStructure reports instead of failing.
type recorder struct {
	*testing.T
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The oracle must catch text that does not belong, wherever it lands.
func TestCheckStructureCatchesInjection(t *testing.T) {
	m, out, _ := renderCase(t, "../testdata/hosts", nil)
	cfg := string(out.Get(haproxycfg.ConfigFile))
	server := "    server s1 10.3.0.1:8080 id 1\n"
	if !strings.Contains(cfg, server) {
		t.Fatalf("fixture changed: no %q", server)
	}
	injections := map[string]string{
		"directive in a backend": strings.Replace(cfg, server, server+"    lua-load /tmp/evil.lua\n", 1),
		"new section":            cfg + "\nlisten evil\n    bind :1\n",
		"extra server":           strings.Replace(cfg, server, server+"    server s9 192.0.2.1:80 id 9\n", 1),
		"changed address":        strings.Replace(cfg, server, "    server s1 192.0.2.1:8080 id 1\n", 1),
		"extra global line":      strings.Replace(cfg, "    default-path config\n", "    default-path config\n    lua-load /tmp/x.lua\n", 1),
	}
	for name, bad := range injections {
		r := &recorder{T: t}
		checkStructure(r, []byte(bad), m)
		if len(r.errs) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
	r := &recorder{T: t}
	checkStructure(r, []byte(cfg), m)
	if len(r.errs) > 0 {
		t.Errorf("clean configuration reported: %v", r.errs)
	}
}
