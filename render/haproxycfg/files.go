package haproxycfg

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Paths of the generated files, relative to the configuration directory.
// haproxy.cfg sets "default-path config", so HAProxy resolves them against
// the directory the configuration is in, wherever it is started from.
// The map files and the default certificate are named by the model
// (explain names the maps it looks up, a Certificate carries its file), so
// their names are declared in package render and repeated here.
const (
	ConfigFile      = "haproxy.cfg"
	ExactMapFile    = render.ExactMapFile
	PrefixMapFile   = render.PrefixMapFile
	TLSHostsMapFile = render.TLSHostsMapFile
	CrtListFile     = "crt-list.txt"
	DefaultCertFile = render.DefaultCertFile
)

// defaultCert answers TLS handshakes whose SNI matches no Ingress. It is a
// fixed self-signed certificate for "haproxy-sidecar.invalid" so that the
// output stays deterministic; it protects nothing and is meant to be
// replaced by a default certificate of the operator's.
//
//go:embed default-cert.pem
var defaultCert []byte

// Config are the settings of the generated files that are not in objects.
type Config struct {
	// HTTPBind and HTTPSBind are listen addresses such as ":80"; they are
	// checked with ParseBind.
	HTTPBind  string
	HTTPSBind string
	// Template renders haproxy.cfg (see package templates).
	Template *template.Template
	// GracePeriod bounds how long a worker replaced by a reload may keep
	// serving its connections (hard-stop-after). Zero means 30 seconds.
	GracePeriod time.Duration
	// WorkerMaxReloads is how many reloads an old worker may survive
	// before it is stopped (mworker-max-reloads). Zero means 10.
	WorkerMaxReloads int
	// Threads is HAProxy's nbthread; 0 writes no nbthread line and leaves
	// HAProxy's default, one thread per CPU it may run on. run sets it
	// from the HAProxy container's CPU limit (internal/cpulimit), so a
	// 2-CPU pod on a 64-core node runs 2 threads, not 64.
	Threads int
	// StatsBind, when set, adds a "stats" frontend listening there (checked
	// with ParseBind): MonitorURI answers 200 while HAProxy runs, for the
	// HAProxy container's probes, and MetricsPath serves HAProxy's own
	// Prometheus exporter when PrometheusExporter is true.
	StatsBind string
	// WorkerSocket, when set, is an absolute path where the worker listens
	// for the runtime API itself (a "stats socket ... level admin" line):
	// the sidecar's runtime commands then skip the master's hop
	// (reload.WorkerSocketFor). Empty for render and explain, which
	// drive no HAProxy.
	WorkerSocket string
	// PrometheusExporter says the HAProxy in use has the exporter compiled
	// in (reload.HasPrometheusExporter); without it HAProxy rejects any
	// configuration that uses it.
	PrometheusExporter bool
}

// quoteWorkerSocket is Config.WorkerSocket as one argument of haproxy.cfg
// (quoteArg: a path may hold spaces or '='), "" for none.
func quoteWorkerSocket(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	q, err := quoteArg(p)
	if err == nil && !strings.HasPrefix(p, "/") {
		err = fmt.Errorf("not an absolute path")
	}
	if err != nil {
		return "", fmt.Errorf("worker socket %q: %w", p, err)
	}
	return q, nil
}

// Paths of the stats frontend (Config.StatsBind).
const (
	MonitorURI  = "/healthz"
	MetricsPath = "/metrics"
)

// File is one generated file.
type File struct {
	Path string // relative, slash-separated
	data []byte
	// lazy is a file kept in pieces (haproxy.cfg, the route maps), put
	// together only when read whole (Data): a runtime change is served
	// without it (the planner compares values and pieces), and the
	// generations are written from the pieces (WriteTo).
	lazy lazyFile
}

// lazyFile is a file in pieces.
type lazyFile interface {
	// whole puts the file together on the first call and returns the
	// same bytes on every call, from any goroutine.
	whole() []byte
	// size is len(whole()), without putting it together.
	size() int
	// writeTo writes whole()'s bytes to w piece by piece, without
	// putting the file together.
	writeTo(w io.Writer) (int64, error)
}

// NewFile is a file of path holding data.
func NewFile(path string, data []byte) File { return File{Path: path, data: data} }

// Data is the file's content. For haproxy.cfg in pieces the first call
// puts it together (a few megabytes at 10k Services); later calls, from
// any goroutine, return the same bytes.
func (f File) Data() []byte {
	if f.lazy != nil {
		return f.lazy.whole()
	}
	return f.data
}

// Size is len(f.Data()), without putting haproxy.cfg together.
func (f File) Size() int {
	if f.lazy != nil {
		return f.lazy.size()
	}
	return len(f.data)
}

// WriteTo writes the file's content to w. A file in pieces is written
// piece by piece, never put together: a generation's writes (the store's
// reload.Content) copy nothing, where putting haproxy.cfg and the route
// maps together for each write was, at 50k Ingresses, a quarter of all
// the sidecar allocated.
func (f File) WriteTo(w io.Writer) (int64, error) {
	if f.lazy != nil {
		return f.lazy.writeTo(w)
	}
	n, err := w.Write(f.data)
	return int64(n), err
}

// writePieces writes pieces to w, one after the other.
func writePieces(w io.Writer, pieces ...[]byte) (int64, error) {
	var total int64
	for _, p := range pieces {
		n, err := w.Write(p)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// SameFiles reports whether a and b are the same files with the same
// contents; haproxy.cfg is compared piece by piece, never put together.
func SameFiles(a, b *Output) bool {
	if len(a.Files) != len(b.Files) {
		return false
	}
	for i := range a.Files {
		if a.Files[i].Path != b.Files[i].Path || !sameFile(a.Files[i], b.Files[i]) {
			return false
		}
	}
	return true
}

// SameConfig reports whether old and next have the same haproxy.cfg.
func SameConfig(old, next *Output) bool {
	x, okx := old.file(ConfigFile)
	y, oky := next.file(ConfigFile)
	return okx == oky && sameFile(x, y)
}

// sameFile compares files in pieces piece by piece (pieces that did not
// change are the same slices), others byte by byte.
func sameFile(x, y File) bool {
	switch a := x.lazy.(type) {
	case *configParts:
		if b, ok := y.lazy.(*configParts); ok {
			return a.same(b)
		}
	case *routeMapText:
		if b, ok := y.lazy.(*routeMapText); ok {
			return a.same(b)
		}
	}
	return bytes.Equal(x.Data(), y.Data())
}

// file returns the file at path.
func (o *Output) file(path string) (File, bool) {
	i, ok := slices.BinarySearchFunc(o.Files, path, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return File{}, false
	}
	return o.Files[i], true
}

// Output is everything HAProxy needs, sorted by path.
type Output struct {
	Files []File
	model *render.Model
	// config is haproxy.cfg in pieces, when the template prints
	// .BackendSections.
	config *configParts
	// routesOf are the model's routes of each match kind, as the route
	// maps were written from them: MapChanges compares them by pointer
	// without reading every route's kind.
	routesOf [2][]*render.Route
	// skeleton renders haproxy.cfg again with the server slots masked,
	// when the planner asks (SameBesideSlots).
	skeleton *skeleton
	// crtSNI are the crt-list's names of each of model.Certs, as the
	// file was written (CrtEntries reads them, never the file).
	crtSNI [][]string
}

// configParts is haproxy.cfg as the template produced it: Head, then one
// section per backend (in Model.Backends order), then Tail. The planner
// (SameBesideSlots) and provenance use the pieces instead of reading the
// file back. A section that did not change is the same slice as in the
// render before, so most pieces compare by pointer.
type configParts struct {
	Head, Tail []byte
	// sections are read through Sections: once the file is put
	// together, they are replaced by the same sections as pieces of
	// it (whole), from the writer's goroutine while the loop may read
	// them.
	sections atomic.Pointer[[][]byte]

	once sync.Once
	file []byte // whole, once put together

	// lines indexes the file's lines by piece, made on the first
	// lineIndex call.
	linesOnce sync.Once
	lines     pieceLines
}

// pieceLines counts haproxy.cfg's lines by piece: head in Head, ends[i]
// the lines of Head and the sections up to section i.
type pieceLines struct {
	head int
	ends []int
}

// lineIndex counts the file's lines by piece, once: where a line is is
// then a binary search (Output.Origin, for each hunk of /history's diffs;
// at 50k Ingresses counting through every section for each hunk was a
// tenth of what the sidecar did between changes).
func (p *configParts) lineIndex() pieceLines {
	p.linesOnce.Do(func() {
		secs := p.Sections()
		n := bytes.Count(p.Head, nl)
		ends := make([]int, len(secs))
		at := n
		for i, s := range secs {
			at += bytes.Count(s, nl)
			ends[i] = at
		}
		p.lines = pieceLines{head: n, ends: ends}
	})
	return p.lines
}

func newConfigParts(head, tail []byte, sections [][]byte) *configParts {
	p := &configParts{Head: head, Tail: tail}
	p.sections.Store(&sections)
	return p
}

// Sections are the backend sections, in Model.Backends order; never
// changed (another slice of equal sections may replace them).
func (p *configParts) Sections() [][]byte { return *p.sections.Load() }

// whole is the file, put together on the first call (a dump, a diff of
// a file not in pieces; the store writes from the pieces, WriteTo). The
// sections become pieces of it: the file is then their only copy (the
// output keeps the file, and the next render takes its unchanged
// sections from here), not one copy in the file and one apart (about
// 2.6 MB more at 10k Services, 5 MB at 50k).
func (p *configParts) whole() []byte {
	p.once.Do(func() {
		secs := p.Sections()
		b := make([]byte, 0, p.size())
		b = append(b, p.Head...)
		pieces := make([][]byte, len(secs))
		for i, s := range secs {
			at := len(b)
			b = append(b, s...)
			pieces[i] = b[at:len(b):len(b)]
		}
		p.file = append(b, p.Tail...)
		p.sections.Store(&pieces)
	})
	return p.file
}

func (p *configParts) writeTo(w io.Writer) (int64, error) {
	n, err := writePieces(w, p.Head)
	if err != nil {
		return n, err
	}
	m, err := writePieces(w, p.Sections()...)
	n += m
	if err != nil {
		return n, err
	}
	m, err = writePieces(w, p.Tail)
	return n + m, err
}

func (p *configParts) size() int {
	n := len(p.Head) + len(p.Tail)
	for _, s := range p.Sections() {
		n += len(s)
	}
	return n
}

// same reports whether p and q are the same file, piece by piece (for
// one template, equal files come in equal pieces).
func (p *configParts) same(q *configParts) bool {
	if p == q {
		return true
	}
	ps, qs := p.Sections(), q.Sections()
	if len(ps) != len(qs) || !bytes.Equal(p.Head, q.Head) || !bytes.Equal(p.Tail, q.Tail) {
		return false
	}
	for i, s := range ps {
		if !lists.Same(s, qs[i]) && !bytes.Equal(s, qs[i]) {
			return false
		}
	}
	return true
}

// Get returns the content of a generated file, or nil.
func (o *Output) Get(path string) []byte {
	f, ok := o.file(path)
	if !ok {
		return nil
	}
	return f.Data()
}

// TemplateData is what the configuration template sees. Every string in it
// has been validated or built from validated parts.
type TemplateData struct {
	// HardStopAfter is the grace period in HAProxy's time format ("30s").
	HardStopAfter    string
	WorkerMaxReloads int
	// Threads is nbthread, 0 for none (Config.Threads).
	Threads int

	HTTPBind, HTTPSBind string
	// WorkerSocket is Config.WorkerSocket, quoted; "" for none.
	WorkerSocket                     string
	DefaultCert, CrtList             string
	ExactMap, PrefixMap, TLSHostsMap string
	// CanaryMap is CanaryMapFile (used only with .Canaries).
	CanaryMap                           string
	DefaultBackend                      string
	UnavailableBackend, NotFoundBackend string
	// BackendSections is where the "backend" template's output for
	// every backend goes, in name order. Rendering sections one by one
	// lets a render redo only the backends that changed; a template that
	// prints .BackendSections must define "backend" (given a BackendData).
	// A template may instead range over .Backends itself.
	BackendSections string
	// Settings are Model.Settings formatted for HAProxy.
	Settings SettingsData
	// Stats is the stats frontend, nil without Config.StatsBind.
	Stats *StatsData
	// TCPServices are the TCP services' frontends (Model.TCPServices), by
	// port; their backends are among the backend sections.
	TCPServices []TCPServiceData
	// Passthrough is set when a route passes TLS through: the HTTPS port
	// is then a TCP frontend (passthrough.go).
	Passthrough *PassthroughData
	// ExtAuthScript is the Lua script of external authentication, ""
	// when no Ingress uses auth-url; ErrorPagesLua the one
	// custom-http-errors needs, "" when no backend uses it. With either,
	// the global section caps Lua's memory at LuaMemory MB.
	ExtAuthScript string
	ErrorPagesLua string
	LuaMemory     int
	// Resolvers is the resolvers section the servers of ExternalName
	// backends use; nil when no backend is one.
	Resolvers *ResolversData

	model *render.Model
	// maskSlots renders every server as maskedServer (a skeleton).
	maskSlots bool
}

// Canaries are the pairs of primary and canary backends routes map to
// (a map value "<primary>~<canary>"), each with the http-request lines
// that pick one of them; a template must print them after routing.
func (d TemplateData) Canaries() []CanaryGroup { return CanaryGroups(d.model) }

// Backends are the Service port backends, sorted by name: for templates
// that do not print .BackendSections.
func (d TemplateData) Backends() []BackendData {
	out := make([]BackendData, 0, len(d.model.Backends))
	for i := range d.model.Backends {
		bd := backendData(d.model.Backends[i])
		if d.maskSlots {
			maskSlots(&bd)
		}
		out = append(out, bd)
	}
	return out
}

// backendData is a backend as the template sees it.
func backendData(be *render.Backend) BackendData {
	bd := BackendData{Name: be.Name, Namespace: be.Namespace, Service: be.Service, Port: be.Port, PortName: be.PortName,
		Servers: make([]ServerData, be.Slots)}
	for i := range bd.Servers {
		s := ServerData{Name: SlotName(i), ID: i + 1, Address: placeholderAddress, Disabled: true}
		if a := be.SlotAddrs[i]; a.IsValid() {
			s.Address, s.Disabled = a.String(), false
		}
		bd.Servers[i] = s
	}
	bd.Ingress, bd.RedirectHost, bd.Spare, bd.OwnName = be.Ingress, be.RedirectHost, be.Spare, be.OwnName
	if be.TCP {
		// A TCP service's backend: bytes to the endpoints, nothing
		// of HTTP; PROXY v1 to them when the entry asks for it.
		bd.TCP, bd.Balance = true, "roundrobin"
		bd.Directives = []string{"mode tcp"}
		if be.SendProxy {
			bd.ServerOptions = " send-proxy"
		}
		return bd
	}
	if be.Resolves() {
		// The one server is the name, resolved by HAProxy (never by the
		// sidecar): no address at start-up (init-addr none keeps it in
		// maintenance until the resolvers answer), then every answer
		// HAProxy gets. The runtime API changes only its name (set
		// server ... fqdn: Output.Slots' FQDN).
		bd.ExternalName = be.ExternalName
		bd.Servers[0] = ServerData{Name: SlotName(0), ID: 1, Address: be.ExternalName + ":" + strconv.Itoa(int(be.ExternalPort)), resolved: true}
	}
	if be.RedirectHost != "" {
		// from-to-www-redirect: the same scheme, path and query on the
		// other host; "redirect prefix" keeps path and query.
		bd.Balance = "roundrobin"
		bd.Directives = []string{
			"http-request redirect prefix " + mustQuoteLogFormat("https://"+be.RedirectHost) + " code 308 if { ssl_fc }",
			"http-request redirect prefix " + mustQuoteLogFormat("http://"+be.RedirectHost) + " code 308",
		}
		return bd
	}
	if be.Policy != nil && be.Policy.Passthrough {
		passthroughBackend(be, &bd)
		return bd
	}
	if !failClosed(func() { policyData(be, &bd); errorPageRules(be, &bd) }) {
		// Unreachable while every annotation is parsed: answer 503
		// rather than serve without the rules, or not at all.
		bd.Directives, bd.ServerOptions, bd.Cookie, bd.Userlist = []string{"http-request deny deny_status 503"}, "", false, nil
	}
	if be.Resolves() {
		bd.ServerOptions = resolveOptions + bd.ServerOptions
		bd.Directives = append(bd.Directives, externalBefore30...)
	}
	return bd
}

// resolveOptions go first on the server line of an ExternalName backend:
// HAProxy's resolvers (the section ResolversData writes) resolve its name,
// IPv4 first when the name has both; without an answer the server has no
// address and stays in maintenance, so the backend answers 503.
const resolveOptions = " resolvers " + render.ResolversName + " init-addr none resolve-prefer ipv4"

// externalBefore30 are the lines an ExternalName backend adds for HAProxy
// before 3.0: when the DNS moves the name, 2.6 keeps sending requests over
// the server connections it has open to the old address (kept alive with
// a client, or idle in its pool) for as long as they last; "max-reuse
// 100" did not change that. Closing the server connection after each
// response moved all traffic within one resolution (4 s) in
// TestExternalNameThroughResolvers. 3.0 closes those connections itself
// and keeps reusing connections. The cost on 2.6 is a connection (and a
// TLS handshake to an HTTPS backend) per request to an ExternalName.
var externalBefore30 = []string{".if version_before(3.0)", "option http-server-close", ".endif"}

// StatsData is the stats frontend as the template sees it.
type StatsData struct {
	Bind       string
	MonitorURI string
	// MetricsPath is empty when HAProxy has no Prometheus exporter.
	MetricsPath string
}

// BackendData is one Service port backend as the template sees it.
type BackendData struct {
	Name      string
	Namespace string
	Service   string
	Port      int32
	PortName  string
	Servers   []ServerData
	// Balance is the algorithm (balance annotation; roundrobin).
	Balance string
	// Directives are the lines the backend's annotations add, in order,
	// each built from parsed values and HAProxy quoting: settings
	// (timeouts, checks, cookie) and, on a per-Ingress backend, its route
	// rules (redirects, source ranges, rate limits, auth, CORS, rewrite,
	// HSTS).
	Directives []string
	// ServerOptions follow every server line (checks, maxconn, TLS to the
	// backend); with Cookie each server also gets "cookie <its name>".
	ServerOptions string
	Cookie        bool
	// Userlist is the auth-basic-secret's users, rendered as a userlist
	// section before the backend; nil without.
	Userlist *UserlistData
	// Ingress is set on a per-Ingress backend.
	Ingress string
	// RedirectHost is set on a from-to-www-redirect backend.
	RedirectHost string
	// TCP is set on a TCP service's backend.
	TCP bool
	// ExternalName is the DNS name of an ExternalName Service's backend,
	// whose one server resolves it (its Address is name:port).
	ExternalName string
	// Spare is set on a spare backend (render.SpareName); OwnName is the
	// name of the backend its Service port would have of its own, "" on
	// a free one.
	Spare   bool
	OwnName string
}

// TCPServiceData is one TCP service's frontend as the template sees it.
type TCPServiceData struct {
	// Name is the frontend's name, Bind its listen address (the HTTP
	// bind address's host, the entry's port), Backend its backend.
	Name, Bind, Backend string
	Port                int
	// Service is the Service port as the entry names it
	// (namespace/name:port), ConfigMap and Key where the entry is.
	Service, ConfigMap, Key string
	// AcceptProxy: every connection must begin with a PROXY header.
	AcceptProxy bool
	// SendProxy: the backend's servers are sent a PROXY v1 header.
	SendProxy bool
}

// tcpServicesData are the TCP services' frontends, listening on the HTTP
// bind address's host. The model never has one on another listener's
// port (render reports those, given Options.ReservedPorts); one that
// still would share a listener's port (a caller that did not say which
// ports are taken) is left out, as HAProxy could not bind it.
func tcpServicesData(m *render.Model, httpBind string, others []string) []TCPServiceData {
	var out []TCPServiceData
	for _, t := range m.TCPServices {
		bind := withPort(httpBind, t.Port)
		if slices.ContainsFunc(others, func(o string) bool { return o != "" && sameListener(bind, o) }) {
			continue
		}
		out = append(out, TCPServiceData{Name: "tcp_" + strconv.Itoa(t.Port), Bind: bind, Backend: t.Backend, Port: t.Port,
			Service: t.Service.String(), ConfigMap: t.ConfigMap, Key: t.Key, AcceptProxy: t.AcceptProxy, SendProxy: t.SendProxy})
	}
	return out
}

// UserlistData is a userlist section; names and hashes are quoted.
type UserlistData struct {
	Name  string
	Users []UserData
}

// UserData is one user line.
type UserData struct{ Name, Hash string }

// ServerData is one server slot. Disabled slots hold a placeholder address
// that the runtime API replaces when an endpoint appears.
type ServerData struct {
	Name     string
	ID       int
	Address  string
	Disabled bool
	// resolved: Address is a name HAProxy resolves (an ExternalName
	// backend's), which no runtime command changes: a skeleton keeps it.
	resolved bool
}

// PlaceholderAddr and PlaceholderPort are where an unused server slot
// points: a loopback port that refuses connections, in case a slot were
// ever enabled by hand. The runtime API points emptied slots there too.
const (
	PlaceholderAddr = "127.0.0.1"
	PlaceholderPort = 1
)

var placeholderAddress = PlaceholderAddr + ":" + strconv.Itoa(PlaceholderPort)

// SlotName is the name of server slot i (0-based) of a backend; the
// runtime API addresses slots by it.
func SlotName(i int) string { return "s" + strconv.Itoa(i+1) }

// Render produces the files for a model.
func Render(m *render.Model, cfg Config) (*Output, error) {
	return renderFiles(m, cfg, nil)
}

// sectionsMarker stands for .BackendSections while the template runs. No
// validated value can contain a NUL, so it cannot come from an object.
const sectionsMarker = "\x00haproxy-sidecar:backend-sections\x00"

// BackendTemplate is the template that renders one backend section.
const BackendTemplate = "backend"

// renderFiles renders the files, keeping backend sections and map files in
// cache when it is not nil (see Incremental).
func renderFiles(m *render.Model, cfg Config, cache *renderCache) (*Output, error) {
	httpBind, err := render.ParseBind(cfg.HTTPBind)
	if err != nil {
		return nil, fmt.Errorf("http bind: %w", err)
	}
	httpsBind, err := render.ParseBind(cfg.HTTPSBind)
	if err != nil {
		return nil, fmt.Errorf("https bind: %w", err)
	}
	// The settings ConfigMap may move either listener to another port;
	// the host part always comes from the bind address.
	httpBind, httpsBind = withPort(httpBind, m.Settings.HTTPPort), withPort(httpsBind, m.Settings.HTTPSPort)
	if sameListener(httpBind, httpsBind) {
		return nil, fmt.Errorf("http bind %s and https bind %s listen on the same port (check --http-bind, --https-bind and the settings ConfigMap's http-port and https-port)", httpBind, httpsBind)
	}
	var stats *StatsData
	if cfg.StatsBind != "" {
		bind, err := render.ParseBind(cfg.StatsBind)
		if err != nil {
			return nil, fmt.Errorf("stats bind: %w", err)
		}
		for _, other := range []string{httpBind, httpsBind} {
			if sameListener(bind, other) {
				return nil, fmt.Errorf("stats bind %s and %s listen on the same port (check --stats-bind, --http-bind, --https-bind and the settings ConfigMap's http-port and https-port)", bind, other)
			}
		}
		stats = &StatsData{Bind: bind, MonitorURI: MonitorURI}
		if cfg.PrometheusExporter {
			stats.MetricsPath = MetricsPath
		}
	}
	if cfg.Template == nil {
		return nil, fmt.Errorf("no template")
	}
	workerSocket, err := quoteWorkerSocket(cfg.WorkerSocket)
	if err != nil {
		return nil, err
	}
	grace, maxReloads := cfg.GracePeriod, cfg.WorkerMaxReloads
	if grace <= 0 {
		grace = 30 * time.Second
	}
	if maxReloads <= 0 {
		maxReloads = 10
	}
	data := TemplateData{
		HardStopAfter:    strconv.FormatInt(grace.Milliseconds(), 10) + "ms",
		WorkerMaxReloads: maxReloads,
		Threads:          max(cfg.Threads, 0),
		HTTPBind:         httpBind, HTTPSBind: httpsBind,
		WorkerSocket: workerSocket,
		DefaultCert:  DefaultCertFile, CrtList: CrtListFile,
		ExactMap: ExactMapFile, PrefixMap: PrefixMapFile, TLSHostsMap: TLSHostsMapFile, CanaryMap: CanaryMapFile,
		DefaultBackend:     m.DefaultBackend,
		UnavailableBackend: render.UnavailableBackend, NotFoundBackend: render.NotFoundBackend,
		BackendSections: sectionsMarker,
		Settings:        settingsData(m.Settings),
		Stats:           stats,
		Passthrough:     passthroughData(m, httpsBind),
		model:           m,
	}
	data.TCPServices = tcpServicesData(m, httpBind, []string{httpBind, httpsBind, cfg.StatsBind})
	data.Resolvers = resolversData(m)
	if usesExtAuth(m) {
		data.ExtAuthScript = ExtAuthScriptFile
	}
	if usesErrorPages(m) {
		data.ErrorPagesLua = ErrorPagesLuaFile
	}
	if data.ExtAuthScript != "" || data.ErrorPagesLua != "" {
		// Both scripts read answers of a tenant's Service into Lua:
		// its memory is bounded whenever one is loaded.
		data.LuaMemory = luaMemory(m)
	}

	var cfgBuf bytes.Buffer
	if err := cfg.Template.Execute(&cfgBuf, data); err != nil {
		return nil, fmt.Errorf("executing template %s: %w", cfg.Template.Name(), err)
	}
	var sections *sectionCache
	if cache != nil {
		sections = &cache.sections
	}
	configFile, err := assembleConfig(cfgBuf.Bytes(), m, cfg, sections)
	if err != nil {
		return nil, err
	}

	defaultPEM := defaultCert
	if c := m.Settings.DefaultCertificate; c != nil {
		defaultPEM = c.PEM
	}
	maps := renderMaps(m, cache)
	parts, _ := configFile.lazy.(*configParts)
	out := &Output{model: m, config: parts, crtSNI: maps.crtSNI, routesOf: [2][]*render.Route{render.MatchExact: maps.exactRoutes, render.MatchPrefix: maps.prefixRoutes},
		skeleton: &skeleton{tmpl: cfg.Template, data: data}}
	out.Files = append(out.Files,
		configFile,
		File{Path: ExactMapFile, lazy: maps.exact},
		File{Path: PrefixMapFile, lazy: maps.prefix},
		File{Path: TLSHostsMapFile, data: maps.tlsHosts},
		File{Path: CrtListFile, data: maps.crtList},
		File{Path: DefaultCertFile, data: defaultPEM},
	)
	if data.ErrorPagesLua != "" {
		out.Files = append(out.Files, File{Path: ErrorPagesLuaFile, data: []byte(ErrorPagesLua)})
	}
	if cm := canaryMap(m); cm != nil {
		out.Files = append(out.Files, File{Path: CanaryMapFile, data: cm})
	}
	if len(m.Passthrough) > 0 {
		out.Files = append(out.Files, File{Path: PassthroughMapFile, data: passthroughMap(m.Passthrough)})
	}
	if rx, hosts := regexFiles(m); rx != nil {
		out.Files = append(out.Files, File{Path: render.RegexMapFile, data: rx}, File{Path: render.RegexHostsMapFile, data: hosts})
	}
	if data.ExtAuthScript != "" {
		out.Files = append(out.Files, File{Path: ExtAuthScriptFile, data: extAuthScript})
	}
	// The few files above sorted, then merged with the certificates and
	// CA files, each sorted already: a pass does not sort 1,000
	// certificates again (an endpoint move's render at 10k Ingresses with
	// 1,000 certificates: 1.22–1.34 ms before, 1.17–1.24 ms after).
	byPath := func(x, y File) int { return strings.Compare(x.Path, y.Path) }
	slices.SortFunc(out.Files, byPath)
	certs := make([]File, len(m.Certs))
	for i, c := range m.Certs {
		certs[i] = File{Path: c.File, data: c.PEM}
	}
	cas := caFiles(m)
	caList := make([]File, len(cas))
	for i, c := range cas {
		caList[i] = File{Path: c.File, data: c.PEM}
	}
	out.Files = mergeSorted(mergeSorted(out.Files, certs, byPath), caList, byPath)
	return out, nil
}

// mergeSorted merges a and b, each sorted by cmp, into one sorted slice.
func mergeSorted[T any](a, b []T, cmp func(x, y T) int) []T {
	if len(b) == 0 {
		return a
	}
	out := make([]T, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if cmp(b[0], a[0]) < 0 {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// appendRouteLines appends what the route map says of r: the comment
// lines naming where it came from (HAProxy skips '#' lines in map files),
// then its key and value. The comment is written here rather than kept
// on every route: at 10k Ingresses that was over a megabyte of strings
// that only the few new lines of a change need.
func appendRouteLines(b []byte, r *render.Route) []byte {
	b = appendOrigin(append(b, "# "...), r.Origin)
	b = appendService(append(b, " -> "...), r.Service)
	b = append(b, '\n')
	if r.Canary != nil {
		b = appendOrigin(append(b, "# canary "...), r.Canary.Origin)
		b = appendService(append(b, " -> "...), r.Canary.Service)
		b = append(b, '\n')
	}
	b = append(b, r.Key...)
	b = append(b, ' ')
	if r.Canary == nil {
		b = append(b, r.Backend...)
	} else {
		b = append(b, r.MapValue()...)
	}
	return append(b, '\n')
}

// appendOrigin appends o.String().
func appendOrigin(b []byte, o render.Origin) []byte {
	b = append(b, "Ingress "...)
	b = append(b, o.Namespace...)
	b = append(b, '/')
	b = append(b, o.Name...)
	if o.Field != "" {
		b = append(b, ' ')
		b = append(b, o.Field...)
	}
	return b
}

// appendService appends s.String().
func appendService(b []byte, s render.ServiceRef) []byte {
	b = append(b, s.Namespace...)
	b = append(b, '/')
	b = append(b, s.Name...)
	b = append(b, ':')
	return append(b, s.Port...)
}

// routeLinesSize is about what appendRouteLines appends for r.
func routeLinesSize(r *render.Route) int {
	n := 24 + len(r.Origin.Namespace) + len(r.Origin.Name) + len(r.Origin.Field) + len(r.Service.Namespace) + len(r.Service.Name) +
		len(r.Service.Port) + len(r.Key) + len(r.Backend)
	if r.Canary != nil {
		n += 128
	}
	return n
}

// sameLines says whether the map lines of p and r are the same.
func sameLines(p, r *render.Route) bool {
	if p == r {
		return true
	}
	if p.Key != r.Key || p.Origin != r.Origin || p.Service != r.Service || p.Backend != r.Backend || (p.Canary == nil) != (r.Canary == nil) {
		return false
	}
	return p.Canary == nil || p.Canary.Origin == r.Canary.Origin && p.Canary.Service == r.Canary.Service && p.MapValue() == r.MapValue()
}

// notRouted is the kind splitRoutes gives a passthrough route: in neither
// route map (its host's TLS connections never reach HTTP routing).
const notRouted = render.MatchKind(255)

// routeSplit is a model's routes with the match kind of each, so that the
// next split reads only the routes that are not at the same place in it.
type routeSplit struct {
	all   []*render.Route
	kinds []render.MatchKind
}

// splitRoutes returns the routes of one match kind each, in order. A route
// that is the same pointer as the next one of prev is not read: at 10k
// Ingresses, reading every route's kind (spread over the heap) took longer
// than writing the map lines that changed.
//
// The kinds are written into buf when it is long enough (every entry is
// set): the caller's, from a split it no longer reads.
func splitRoutes(prev *routeSplit, routes []*render.Route, buf []render.MatchKind) (s *routeSplit, exact, prefix []*render.Route) {
	kinds := buf[:0]
	if cap(buf) < len(routes) {
		kinds = make([]render.MatchKind, len(routes))
	}
	s = &routeSplit{all: routes, kinds: kinds[:len(routes)]}
	nExact := 0
	j := 0
	for i, r := range routes {
		k, known := render.MatchKind(0), false
		if prev != nil {
			// Routes gone since prev are passed over; routes are in
			// order, so a new route stops the walk at the next old one.
			for j < len(prev.all) && prev.all[j] != r && prev.all[j].Order() < r.Order() {
				j++
			}
			if j < len(prev.all) && prev.all[j] == r {
				k, known = prev.kinds[j], true
				j++
			}
		}
		if !known {
			k = r.Match
			if r.Passthrough {
				k = notRouted
			}
		}
		s.kinds[i] = k
		if k == render.MatchExact {
			nExact++
		}
	}
	exact, prefix = make([]*render.Route, 0, nExact), make([]*render.Route, 0, len(routes)-nExact)
	for i, r := range routes {
		switch s.kinds[i] {
		case render.MatchExact:
			exact = append(exact, r)
		case render.MatchPrefix:
			prefix = append(prefix, r)
		}
	}
	return s, exact, prefix
}

// tlsHostsHeader is the first line of the TLS hosts map.
const tlsHostsHeader = "# hosts redirected from HTTP to HTTPS. Generated by haproxy-sidecar.\n"

// hostOrigins returns, for each host of the TLS hosts map, the Ingresses
// whose TLS entries list it (tlsOrigins): the comment above its row, and
// its provenance.
func hostOrigins(hosts []string, certs []render.Certificate) []string {
	// The certificates that name each host (one, but for models made by
	// hand).
	byHost := make(map[string][]int, len(hosts))
	for i := range certs {
		for _, h := range certs[i].SNI {
			byHost[h] = append(byHost[h], i)
		}
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = tlsOrigins(byHost[h], certs)
	}
	return out
}

// hostsMap writes the TLS hosts map from its hosts and the comment
// (provenance) of each (mapHostOrigins).
func hostsMap(hosts, hostOrigins []string) []byte {
	var b bytes.Buffer
	b.WriteString(tlsHostsHeader)
	for i, origins := range hostOrigins {
		// Provenance, as on the routing maps: the TLS entries that list
		// the host.
		if origins != "" {
			b.WriteString("# " + origins + "\n")
		}
		b.WriteString(hosts[i])
		b.WriteString(" " + tlsHostValue + "\n")
	}
	return b.Bytes()
}

// tlsOrigins names the Ingresses whose TLS entries use the certificates.
func tlsOrigins(which []int, certs []render.Certificate) string {
	var out []string
	for _, i := range which {
		for _, o := range certs[i].Origins {
			out = append(out, o.String())
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ", ")
}

// crtListSNI returns, for each certificate, the SNI names its crt-list
// line filters on; nil for a certificate that gets no line.
//
// HAProxy prefers an exact SNI match over a wildcard on its own. A
// certificate of TLS entries without hosts (no SNI) is offered for the
// names it carries, but never for a name another line lists: written
// without a filter, its line would take the name from a later line that
// lists it (HAProxy 2.6 and 3.0 answer with the first), so a tenant's
// certificate carrying another tenant's host would win the handshake.
// Its names are therefore written out, less those (HostlessNames); when
// none is left it gets no line, since one without a filter would take
// them all.
func crtListSNI(certs []render.Certificate) [][]string {
	offered := render.HostlessNames(certs)
	out := make([][]string, len(certs))
	for i := range certs {
		if out[i] = certs[i].SNI; len(out[i]) == 0 {
			out[i] = offered[i]
		}
	}
	return out
}

// notOffered ends the comment of a certificate that gets no crt-list line.
const notOffered = ": no name in the certificate is left that no other certificate serves; not offered"

// crtList has one line per certificate, filtered by the SNI names it
// serves (crtListSNI), after a comment naming where it comes from.
func crtList(certs []render.Certificate) ([]byte, [][]string) {
	var b bytes.Buffer
	snis := crtListSNI(certs)
	for i, sni := range snis {
		c := &certs[i]
		if len(sni) == 0 {
			b.WriteString("# " + certOrigin(c) + notOffered + "\n")
			continue
		}
		// HAProxy skips lines starting with '#' in a crt-list.
		b.WriteString("# " + certOrigin(c) + "\n")
		b.WriteString(c.File)
		for _, h := range sni {
			b.WriteByte(' ')
			b.WriteString(h)
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), snis
}

// renderCache is what an incremental render keeps for the next: the
// backend sections, and the map files with the model slices they were
// written from. The engine hands out the same slice while its contents do
// not change, so the same slice means the same file.
type renderCache struct {
	sections sectionCache
	certs    []render.Certificate
	hosts    []string
	files    mapFiles
	// passthrough: the TLS hosts map was written with passed-through
	// hosts.
	passthrough bool
	// split is the routes the maps were written from (split.all), by
	// match kind; exact and prefix are the route maps with the routes of
	// each of their lines (writeRouteMap).
	split         *routeSplit
	exact, prefix *routeMapText
	// spareKinds is the kinds of the split before split: the next split
	// is written into it (at 50k Ingresses, 0.8 MB a pass otherwise).
	spareKinds []render.MatchKind
}

type mapFiles struct {
	exact, prefix     *routeMapText
	tlsHosts, crtList []byte
	// crtSNI are the crt-list's SNI names of each certificate
	// (crtListSNI), as the file was written from them.
	crtSNI [][]string
	// The routes the route maps were written from.
	exactRoutes, prefixRoutes []*render.Route
}

func renderMaps(m *render.Model, cache *renderCache) mapFiles {
	var f mapFiles
	switch {
	case cache == nil:
		_, f.exactRoutes, f.prefixRoutes = splitRoutes(nil, m.Routes, nil)
		f.exact, f.prefix = writeRouteMap(nil, f.exactRoutes), writeRouteMap(nil, f.prefixRoutes)
	case cache.split != nil && lists.Same(cache.split.all, m.Routes):
		f.exact, f.prefix = cache.exact, cache.prefix
		f.exactRoutes, f.prefixRoutes = cache.files.exactRoutes, cache.files.prefixRoutes
	default:
		split, exact, prefix := splitRoutes(cache.split, m.Routes, cache.spareKinds)
		if cache.split != nil {
			cache.spareKinds = cache.split.kinds
		}
		cache.split = split
		cache.exact, cache.prefix = writeRouteMap(cache.exact, exact), writeRouteMap(cache.prefix, prefix)
		f.exact, f.prefix = cache.exact, cache.prefix
		f.exactRoutes, f.prefixRoutes = exact, prefix
	}
	if cache != nil && cache.files.tlsHosts != nil && lists.Same(cache.certs, m.Certs) && lists.Same(cache.hosts, m.TLSHosts) && len(m.Passthrough) == 0 && !cache.passthrough {
		f.tlsHosts, f.crtList, f.crtSNI = cache.files.tlsHosts, cache.files.crtList, cache.files.crtSNI
	} else {
		f.tlsHosts = hostsMapOf(m)
		f.crtList, f.crtSNI = crtList(m.Certs)
	}
	if cache != nil {
		cache.certs, cache.hosts, cache.files, cache.passthrough = m.Certs, m.TLSHosts, f, len(m.Passthrough) > 0
	}
	return f
}
