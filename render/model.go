// Package render turns Kubernetes objects into a validated routing model:
// it reads the objects (parse, validate, annotations, ingress-nginx's
// names, settings), builds the model (BuildModel, and Engine to build it
// again incrementally) and explains it. Writing HAProxy's files from the
// model is package haproxycfg, which depends on render and never the other
// way. It is pure: no I/O, no clocks, no globals, and the same input
// always gives the same model.
package render

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Inputs are the Kubernetes objects a render starts from. Order does not
// matter: everything is sorted before use.
type Inputs struct {
	Ingresses      []*networkingv1.Ingress
	IngressClasses []*networkingv1.IngressClass
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Secrets        []*corev1.Secret
	ConfigMaps     []*corev1.ConfigMap
	// Unchanged names the lists that are, slice and objects, the ones
	// the same source handed out last time (a source that caches its
	// lists sets it; the zero value claims nothing). The incremental
	// renderer and the controller skip taking such a list in again when
	// it is also the one they took in last: a slice changed in place is
	// never mistaken for an unchanged one.
	Unchanged InputKinds
	// IngressDelta, when set, says how Ingresses differs from the list
	// the same source handed out before it (Delta.Since). A consumer
	// that took in that very slice last applies the delta instead of
	// walking the list (at 10k Ingresses, a walk by pointer is
	// milliseconds of a one-Ingress change); any other consumer walks
	// the list. The zero value claims nothing.
	IngressDelta *Delta[*networkingv1.Ingress]
	// ServiceDelta and EndpointSliceDelta are the same for Services and
	// EndpointSlices: an endpoint move then reads one EndpointSlice, not
	// every Service and EndpointSlice of the cluster.
	ServiceDelta       *Delta[*corev1.Service]
	EndpointSliceDelta *Delta[*discoveryv1.EndpointSlice]
}

// Delta is how a list differs from an earlier list of the same source:
// Added are the objects of the list that are not in Since, Removed the
// objects of Since that are not in the list (an object updated is a new
// pointer: the old one removed, the new one added).
type Delta[T any] struct {
	Since          []T
	Added, Removed []T
}

// InputKinds is a set of the lists of Inputs.
type InputKinds uint8

// The lists of Inputs, for InputKinds.
const (
	IngressesKind InputKinds = 1 << iota
	IngressClassesKind
	ServicesKind
	EndpointSlicesKind
	SecretsKind
	ConfigMapsKind
)

// Has is true when every kind of k is in s.
func (s InputKinds) Has(k InputKinds) bool { return s&k == k }

// MatchKind is how a route compares the request path. A byte, as
// HostKind: both sit beside each other in every route and parsed path.
type MatchKind uint8

const (
	// MatchExact compares the whole path, case-sensitively.
	MatchExact MatchKind = iota
	// MatchPrefix compares path elements split by "/", ignoring trailing
	// slashes on both sides. ImplementationSpecific behaves as Prefix.
	MatchPrefix
	// MatchRegex matches a regular expression (use-regex) from the start
	// of the path, case-insensitively; Route.Regex is the expression as
	// HAProxy gets it. See RegexHost for the order of a host's paths.
	MatchRegex
)

func (k MatchKind) String() string {
	switch k {
	case MatchExact:
		return "Exact"
	case MatchRegex:
		return "Regex"
	}
	return "Prefix"
}

// HostKind orders host matching: an exact host is tried before a wildcard,
// and rules without a host are tried last.
type HostKind uint8

const (
	HostExact HostKind = iota
	HostWildcard
	HostAny
)

// Origin says which part of which Ingress produced a model element, so that
// every line HAProxy runs can be traced back to the object a user wrote.
type Origin struct {
	Namespace string
	Name      string
	// Field is the JSON path inside the object, e.g.
	// "spec.rules[0].http.paths[1]" or "spec.defaultBackend".
	Field string
}

func (o Origin) String() string {
	// Concatenated, not formatted: every route of a render has one.
	if o.Field == "" {
		return "Ingress " + o.Namespace + "/" + o.Name
	}
	return "Ingress " + o.Namespace + "/" + o.Name + " " + o.Field
}

// Route is one host+path rule that survived validation and conflict
// resolution. Its fields of a byte sit together (240 bytes a route, not
// 256: every path of the cluster has one).
type Route struct {
	Host     string // "" for rules without host, "*.example.com" for wildcards
	HostKind HostKind
	Match    MatchKind
	// Via says which annotation made the route, if one did.
	Via RouteVia
	// Passthrough: the route of an ssl-passthrough Ingress ("/" of an
	// exact host): its host's TLS connections go to Backend unterminated,
	// and it is in none of the HTTP route maps (passthrough.go).
	Passthrough bool
	Path        string // as written in the Ingress
	// PathType is the pathType as written (ImplementationSpecific is kept
	// for display even though it matches as Prefix).
	PathType networkingv1.PathType
	// Key is the map key HAProxy looks up: host followed by the path; for
	// prefix routes the path has its trailing slashes removed and one "/"
	// appended so that map_beg matches on element boundaries only.
	Key string
	// Backend is the HAProxy backend name serving this route; it is
	// UnavailableBackend when the Service, port or endpoints cannot be used.
	Backend string
	Service ServiceRef
	Origin  Origin
	// Canary, when set, takes a share of the route's requests.
	Canary *Canary
	// Regex is the PCRE expression of a MatchRegex route (printRegex).
	Regex string

	// order sorts routes (routeOrder); set by the builder.
	order string
	// created is the Ingress's creation time (Unix nanoseconds), which
	// decides who owns a host with regular-expression paths (RegexHost).
	created int64
}

// Canary is a canary Ingress's path on the route of the same host and
// path: requests its rule selects go to Backend instead of the route's.
type Canary struct {
	Backend string
	Service ServiceRef
	Origin  Origin
	Rule    *CanaryRule
}

// MapValue is what the route map holds for the route: the backend, or for
// a route with a canary the pair "<primary>~<canary>", which the frontend's
// canary rules turn into one of the two (no backend name holds '~').
func (r *Route) MapValue() string {
	if r.Canary == nil {
		return r.Backend
	}
	return CanaryKey(r.Backend, r.Canary.Backend)
}

// CanaryKey is the map value of a route whose canary is canary.
func CanaryKey(primary, canary string) string { return primary + "~" + canary }

// ServiceRef is the backend an Ingress path asked for.
type ServiceRef struct {
	Namespace string
	Name      string
	// Port is the port as written: a number or a name.
	Port string
}

func (s ServiceRef) String() string {
	return s.Namespace + "/" + s.Name + ":" + s.Port
}

// Names of the backends the configuration always has.
const (
	// UnavailableBackend has no servers, so HAProxy answers 503: used for
	// routes whose Service, port or endpoints are missing.
	UnavailableBackend = "_unavailable"
	// NotFoundBackend answers 404 when no rule matches and no Ingress
	// defines spec.defaultBackend.
	NotFoundBackend = "_default_404"
)

// Backend is one Service port with its ready endpoints.
type Backend struct {
	Name      string // <namespace>_<service>_<port number>
	Namespace string
	Service   string
	Port      int32 // the Service port
	PortName  string
	// Servers are the ready endpoints, sorted by address and port.
	Servers []netip.AddrPort
	// Slots is the number of server lines rendered: at least len(Servers),
	// rounded up so that endpoints can come and go through the runtime API
	// without a reload. It depends only on len(Servers).
	Slots int
	// SlotAddrs is what each server line holds (len Slots; the zero
	// AddrPort is an empty slot). Endpoints fill slots in sorted order,
	// except that with Options.Previous an endpoint that survives keeps
	// its slot: removing one endpoint moves no other, so the runtime API
	// changes one slot, not every slot after it.
	SlotAddrs []netip.AddrPort

	// Settings are the Service's backend annotations, from the oldest
	// Ingress that sets any (zero: none). CA is their backend-ca-secret
	// bundle; Broken: that Secret is missing or invalid, so the backend
	// answers 503 rather than skip verification.
	Settings BackendSettings
	CA       *CAFile
	Broken   bool
	// Ingress is set on a per-Ingress backend (variantName): the Ingress
	// (same namespace) whose route annotations Policy holds, with the
	// users of its auth-basic-secret and the paths rewrite-target
	// replaces (and x-forwarded-prefix: true sends).
	Ingress      string
	Policy       *RoutePolicy
	Users        []HTPasswdUser
	RewritePaths []RewritePath
	// ExtAuthBackend is the backend of Policy.ExtAuth's auth service; ""
	// when it cannot be resolved (every request is answered 500).
	ExtAuthBackend string
	// ErrorBackend is the backend (of the default-backend Service, for
	// this Ingress) that custom-http-errors takes error pages from.
	ErrorBackend string
	// RedirectHost is set on a from-to-www-redirect backend (no Service,
	// no servers): it answers 308 to the same scheme, path and query on
	// this host.
	RedirectHost string
	// TCP is set on a TCP service's backend (TCPBackendName): mode tcp,
	// no HTTP lines; SendProxy: its servers are sent a PROXY v1 header.
	TCP, SendProxy bool
	// ExternalName is set on the backend of an ExternalName Service: its
	// one server is this DNS name (validated, lower case, no trailing
	// dot) at ExternalPort, resolved by HAProxy's resolvers while it
	// runs (ResolversName); Servers is empty, Slots 1 and SlotAddrs holds
	// the zero address: the runtime API never sets an address there, only
	// a new name ("set server ... fqdn").
	ExternalName string
	ExternalPort int32
	// ExternalRefused: an ExternalName Service whose spec.externalName
	// was refused (a Problem on the Service says why); the backend has
	// no server and answers 503.
	ExternalRefused bool
	// Spare is set on a backend of the pool (SpareName, pool.go): declared
	// ahead with SpareSlots slots, and given to a new Service port whose
	// backend is plain, so that it is served without a reload. OwnName
	// is then the name that Service port's own backend has (Namespace,
	// Service, Port, PortName and the servers are its); "" while the
	// spare is free.
	Spare   bool
	OwnName string
}

// Resolves says the backend's server is a DNS name HAProxy resolves.
func (be *Backend) Resolves() bool { return be.ExternalName != "" }

// assignSlots places servers (sorted) into n slots, keeping each one that
// held slot i in prev at i.
func assignSlots(servers []netip.AddrPort, n int, prev []netip.AddrPort) []netip.AddrPort {
	slots := make([]netip.AddrPort, n)
	placed := make(map[netip.AddrPort]bool, len(servers))
	if len(prev) > 0 {
		current := make(map[netip.AddrPort]bool, len(servers))
		for _, s := range servers {
			current[s] = true
		}
		for i := 0; i < n && i < len(prev); i++ {
			if p := prev[i]; p.IsValid() && current[p] && !placed[p] {
				slots[i], placed[p] = p, true
			}
		}
	}
	next := 0
	for _, s := range servers {
		if placed[s] {
			continue
		}
		for slots[next].IsValid() {
			next++
		}
		slots[next] = s
	}
	return slots
}

// ServerSlots is the number of server lines a backend with n ready endpoints
// gets: the next power of two, at least MinServerSlots.
func ServerSlots(n int) int {
	s := MinServerSlots
	for s < n {
		s *= 2
	}
	return s
}

// MinServerSlots keeps scale-ups from 1 to 4 replicas (the common rolling
// update surge) free of reloads.
const MinServerSlots = 4

// Certificate is one TLS Secret turned into a PEM file, with the SNI names
// it serves.
type Certificate struct {
	// File is the path relative to the configuration directory.
	File      string
	Namespace string
	Secret    string
	// PEM holds only re-encoded certificate and key blocks: any other text
	// in the Secret is dropped so nothing but key material reaches HAProxy.
	PEM []byte
	// SNI are the host names (exact or wildcard) this certificate is
	// selected for, sorted. Empty means "the names in the certificate".
	SNI     []string
	Origins []Origin
}

// Model is the validated, sorted routing model.
type Model struct {
	// Routes are pointers: a route is never changed once made, so models
	// share them, and a change copies a slice of pointers, not of routes
	// (at 10k Ingresses 0.1 MB instead of 3.5 MB).
	Routes []*Route
	// Backends are pointers for the same reason: a backend is made again,
	// never changed, when its Service, endpoints or annotations change.
	Backends []*Backend
	// Certs are sorted by File.
	Certs []Certificate
	// TLSHosts are the hosts (exact or wildcard) whose plain-HTTP requests
	// are redirected to HTTPS.
	TLSHosts []string
	// DefaultBackend serves requests no rule matches.
	DefaultBackend string
	// DefaultOrigin is the Ingress whose spec.defaultBackend is used.
	DefaultOrigin *Origin
	// DefaultService is the --default-backend-service Service, when it
	// is DefaultBackend.
	DefaultService *ServiceRef
	// Served lists the Ingresses this controller serves, as namespace/name.
	// A key is the very string of the last model's list (the same bytes
	// in memory, not only an equal string) only for the same Ingress, the
	// same UID (perhaps updated since): a new Ingress of the same name
	// has a key of its own. The Events reporter relies on it
	// (kube.EventReporter).
	Served []string
	// Settings are the global settings from the settings ConfigMap, with
	// defaults for every key it does not set validly.
	Settings Settings
	// Problems are the things skipped, each naming its object and field.
	Problems []Problem
	// Regex are the hosts with regular-expression paths, in route order.
	Regex []RegexHost
	// TCPServices are the entries of the TCP services ConfigMap that are
	// served, by port; each one's backend is in Backends.
	TCPServices []TCPService
	// Passthrough are the routes of Routes with Passthrough set, in
	// route order; nil when there are none.
	Passthrough []*Route

	// canaries are the paths of canary Ingresses, before attachCanaries
	// puts them on their routes.
	canaries []canaryPath
	// extra are backends no route names that an Ingress's evaluation
	// made (custom-http-errors' error page backends).
	extra []string
	// canaryFree: the builder attached no canary to any route, so
	// haproxycfg.CanaryGroups need not look at every route on every render.
	canaryFree bool
	// extAuth are the auth services' backends the build resolved (see
	// extAuthBackend), for the engine to keep.
	extAuth []string
}

// CanaryFree reports that the builder attached no canary to any route, so
// that haproxycfg.CanaryGroups need not look at every route on every
// render. False for a Model not made by BuildModel.
func (m *Model) CanaryFree() bool { return m.canaryFree }

// Order is the route's place in Model.Routes (its sort key), for writers
// that merge sorted lists of routes.
func (r *Route) Order() string { return r.order }
