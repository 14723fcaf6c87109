package render

// Paths of the generated files the model names, relative to the
// configuration directory: the three maps explain looks requests up in,
// and the default certificate's file (Certificate.File). Package
// haproxycfg writes them, and names the rest of its files itself.
const (
	ExactMapFile    = "maps/exact.map"
	PrefixMapFile   = "maps/prefix.map"
	TLSHostsMapFile = "maps/tls-hosts.map"
	// RegexMapFile holds the regular-expression paths (map_reg) and
	// RegexHostsMapFile the hosts that have any; both exist only when
	// some Ingress uses regular expressions.
	RegexMapFile      = "maps/regex.map"
	RegexHostsMapFile = "maps/regex-hosts.map"
	// CanaryMapFile holds each canary pair's weight and header value,
	// changed at run time; it exists only when some route has a canary.
	CanaryMapFile   = "maps/canary.map"
	DefaultCertFile = "certs/default.pem"
)
