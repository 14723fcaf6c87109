package haproxycfg

import (
	"cmp"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// SettingsData are the settings as the template sees them, each formatted
// for HAProxy from a validated value.
type SettingsData struct {
	// Timeouts in milliseconds, e.g. "5000ms".
	TimeoutConnect, TimeoutClient, TimeoutServer string
	TimeoutHTTPRequest, TimeoutHTTPKeepAlive     string
	TimeoutQueue, TimeoutTunnel                  string
	// MaxConn is 0 when the global maxconn is not set.
	MaxConn int
	// LogFormat is the log-format argument, in double quotes; "" means
	// option httplog.
	LogFormat                                  string
	SSLMinVersion, SSLCiphers, SSLCipherSuites string
	// RedirectPort is ":<port>" for the Location of HTTPS redirects, or
	// "" for 443.
	RedirectPort string
	// TrustedProxies are the trusted-proxies ranges, space-separated, in
	// chunks of at most 64 (one acl line each); nil when none.
	TrustedProxies []string
	// ProxyProtocol are the use-proxy-protocol addresses, space-separated,
	// in chunks of at most 64 (one acl line each); nil when off.
	ProxyProtocol []string
}

// settingsData formats the settings; zero fields (a Model not made by
// BuildModel) take their defaults.
func settingsData(s render.Settings) SettingsData {
	def := render.DefaultSettings()
	dur := func(d, def time.Duration) string {
		if d <= 0 {
			d = def
		}
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	str := func(v, def string) string { return cmp.Or(v, def) }
	out := SettingsData{
		TimeoutConnect:       dur(s.TimeoutConnect, def.TimeoutConnect),
		TimeoutClient:        dur(s.TimeoutClient, def.TimeoutClient),
		TimeoutServer:        dur(s.TimeoutServer, def.TimeoutServer),
		TimeoutHTTPRequest:   dur(s.TimeoutHTTPRequest, def.TimeoutHTTPRequest),
		TimeoutHTTPKeepAlive: dur(s.TimeoutHTTPKeepAlive, def.TimeoutHTTPKeepAlive),
		TimeoutQueue:         dur(s.TimeoutQueue, def.TimeoutQueue),
		TimeoutTunnel:        dur(s.TimeoutTunnel, def.TimeoutTunnel),
		MaxConn:              s.MaxConn,
		SSLMinVersion:        str(s.SSLMinVersion, def.SSLMinVersion),
		SSLCiphers:           str(s.SSLCiphers, def.SSLCiphers),
		SSLCipherSuites:      str(s.SSLCipherSuites, def.SSLCipherSuites),
	}
	if p := s.HTTPSRedirectPort; p != 0 && p != 443 {
		out.RedirectPort = ":" + strconv.Itoa(p)
	}
	out.TrustedProxies = prefixChunks(s.TrustedProxies)
	out.ProxyProtocol = prefixChunks(s.ProxyProtocol)
	if s.LogFormat != "" {
		// parseLogFormat allows no '"', '\\' or '$', the only characters
		// HAProxy interprets inside double quotes.
		out.LogFormat = `"` + s.LogFormat + `"`
	}
	return out
}

// prefixChunks writes ranges for acl lines, at most cidrChunk a line; nil
// for none.
func prefixChunks(ps []netip.Prefix) []string {
	var out []string
	for i := 0; i < len(ps); i += cidrChunk {
		out = append(out, joinPrefixes(ps[i:min(i+cidrChunk, len(ps))]))
	}
	return out
}

// withPort replaces the port of a bind address returned by ParseBind.
func withPort(bind string, port int) string {
	if port == 0 {
		return bind
	}
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return bind
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// sameListener tells whether two bind addresses from ParseBind would listen
// on the same port of the same address (an empty or unspecified host
// overlaps every address).
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	unspecified := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return ha == hb || unspecified(ha) || unspecified(hb)
}
