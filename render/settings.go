package render

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Settings are the global settings of the configuration, read from the
// settings ConfigMap (Options.SettingsConfigMap). Every field holds a parsed,
// validated value; BuildModel fills in the defaults for keys that are absent
// or invalid, so the template never sees an unchecked string.
type Settings struct {
	TimeoutConnect       time.Duration
	TimeoutClient        time.Duration
	TimeoutServer        time.Duration
	TimeoutHTTPRequest   time.Duration
	TimeoutHTTPKeepAlive time.Duration
	TimeoutQueue         time.Duration
	TimeoutTunnel        time.Duration
	// MaxConn is the global maxconn; 0 leaves HAProxy's default.
	MaxConn int
	// LogFormat is the frontend's HTTP log format; "" means option httplog.
	LogFormat string
	// SSLMinVersion is one of TLSv1.0, TLSv1.1, TLSv1.2 and TLSv1.3.
	SSLMinVersion string
	// SSLCiphers are OpenSSL TLS 1.2 cipher names joined by ':'.
	SSLCiphers string
	// SSLCipherSuites are TLS 1.3 cipher suite names joined by ':'.
	SSLCipherSuites string
	// HTTPPort and HTTPSPort replace the port of Config.HTTPBind and
	// Config.HTTPSBind; 0 keeps the port of the bind address.
	HTTPPort, HTTPSPort int
	// HTTPSRedirectPort is the port in the Location of HTTP-to-HTTPS
	// redirects, as clients reach HTTPS (behind a load balancer that is
	// usually not the port HAProxy binds); 0 and 443 leave it out.
	HTTPSRedirectPort int
	// DefaultCertificate answers TLS handshakes whose SNI matches no
	// Ingress; nil means the built-in certificate. Its File is
	// DefaultCertFile.
	DefaultCertificate *Certificate
	// TrustedProxies are the addresses whose X-Forwarded-For is believed:
	// from them, source ranges and rate limits see the last address of
	// the header (the client that proxy saw) instead of the connection's.
	TrustedProxies []netip.Prefix
	// ProxyProtocol are the addresses of the load balancers that send the
	// PROXY protocol (v1 or v2); nil means off. When set, only they may
	// connect to the HTTP and HTTPS listeners, every connection of theirs
	// must begin with a PROXY header, and the address in that header is
	// the client's everywhere (source ranges, rate limits, trusted-proxies,
	// X-Forwarded-For, logs).
	ProxyProtocol []netip.Prefix
	// DNSNameservers are the nameservers HAProxy's resolvers ask for the
	// names of ExternalName Services; nil means those of the pod's
	// /etc/resolv.conf (parse-resolv-conf).
	DNSNameservers []netip.AddrPort
}

// DefaultSettings are the settings used for every key the settings
// ConfigMap does not set (or sets to an invalid value).
func DefaultSettings() Settings {
	return Settings{
		TimeoutConnect:       5 * time.Second,
		TimeoutClient:        60 * time.Second,
		TimeoutServer:        60 * time.Second,
		TimeoutHTTPRequest:   10 * time.Second,
		TimeoutHTTPKeepAlive: 60 * time.Second,
		TimeoutQueue:         30 * time.Second,
		TimeoutTunnel:        time.Hour,
		SSLMinVersion:        "TLSv1.2",
		SSLCiphers:           "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
		SSLCipherSuites:      "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
	}
}

type settingKey struct {
	key   string
	apply func(p *settingsParser, s *Settings, value string) error
}

// settingKeys is the one table of settings ConfigMap keys, sorted by key:
// each key has the function that parses its value into a typed field of
// Settings, or returns an error saying what is allowed. Adding a key is
// adding a line here (and a field, and its use in the template).
var settingKeys = []settingKey{
	{"default-certificate", withSecrets((*settingsParser).certificate, func(s *Settings) **Certificate { return &s.DefaultCertificate })},
	{"dns-nameservers", set(parseNameservers, func(s *Settings) *[]netip.AddrPort { return &s.DNSNameservers })},
	{"http-port", set(parsePort, func(s *Settings) *int { return &s.HTTPPort })},
	{"https-port", set(parsePort, func(s *Settings) *int { return &s.HTTPSPort })},
	{"https-redirect-port", set(parsePort, func(s *Settings) *int { return &s.HTTPSRedirectPort })},
	{"log-format", set(parseLogFormat, func(s *Settings) *string { return &s.LogFormat })},
	{"maxconn", set(parseMaxConn, func(s *Settings) *int { return &s.MaxConn })},
	{"ssl-ciphers", set(parseCiphers, func(s *Settings) *string { return &s.SSLCiphers })},
	{"ssl-ciphersuites", set(parseCipherSuites, func(s *Settings) *string { return &s.SSLCipherSuites })},
	{"ssl-min-version", set(parseSSLMinVersion, func(s *Settings) *string { return &s.SSLMinVersion })},
	{"timeout-client", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutClient })},
	{"timeout-connect", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutConnect })},
	{"timeout-http-keep-alive", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutHTTPKeepAlive })},
	{"timeout-http-request", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutHTTPRequest })},
	{"timeout-queue", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutQueue })},
	{"timeout-server", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutServer })},
	{"timeout-tunnel", set(parseTimeout, func(s *Settings) *time.Duration { return &s.TimeoutTunnel })},
	{"trusted-proxies", set(parseCIDRList, func(s *Settings) *[]netip.Prefix { return &s.TrustedProxies })},
	{"use-proxy-protocol", set(parseProxyProtocol, func(s *Settings) *[]netip.Prefix { return &s.ProxyProtocol })},
}

// SettingKeys returns the keys the settings ConfigMap may hold, sorted.
func SettingKeys() []string {
	keys := make([]string, len(settingKeys))
	for i, k := range settingKeys {
		keys[i] = k.key
	}
	return keys
}

// set stores what parse returns in a field, or leaves the field alone when
// parse fails.
func set[T any](parse func(string) (T, error), field func(*Settings) *T) func(*settingsParser, *Settings, string) error {
	return func(_ *settingsParser, s *Settings, v string) error {
		x, err := parse(v)
		if err == nil {
			*field(s) = x
		}
		return err
	}
}

// withSecrets is set for parse functions that look at other objects.
func withSecrets[T any](parse func(*settingsParser, string) (T, error), field func(*Settings) *T) func(*settingsParser, *Settings, string) error {
	return func(p *settingsParser, s *Settings, v string) error {
		x, err := parse(p, v)
		if err == nil {
			*field(s) = x
		}
		return err
	}
}

// settingsParser gives parse functions access to the other inputs.
type settingsParser struct {
	secrets map[string]*corev1.Secret // by namespace/name
	// certificatePEM is the builder's (which keeps results between
	// builds).
	certificatePEM func(*corev1.Secret) ([]byte, error)
}

// ParseSettingsRef checks a settings ConfigMap reference "namespace/name".
func ParseSettingsRef(ref string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(ref, "/")
	if !ok {
		return "", "", fmt.Errorf("%q: want namespace/name", ref)
	}
	if err := validateNamespace(ns); err != nil {
		return "", "", err
	}
	if err := validateObjectName(n); err != nil {
		return "", "", err
	}
	return ns, n, nil
}

// settings reads the settings ConfigMap into b.m.Settings. A missing
// ConfigMap leaves the defaults; every unknown key and invalid value is a
// Warning and keeps the default of its key.
func (b *builder) settings(configMaps []*corev1.ConfigMap) {
	b.m.Settings = DefaultSettings()
	ref := b.opts.SettingsConfigMap
	if ref == "" {
		return
	}
	ns, name, err := ParseSettingsRef(ref)
	if err != nil {
		b.reporter("ConfigMap", "", "").warn("", SettingsRefInvalid, "settings ConfigMap %v; defaults used", err)
		return
	}
	r := b.reporter("ConfigMap", ns, name)
	var cm *corev1.ConfigMap
	for _, c := range configMaps {
		if c.Namespace == ns && c.Name == name {
			cm = c
			break
		}
	}
	if cm == nil {
		r.notice("", SettingsNotFound, "settings ConfigMap not found; defaults used")
		return
	}
	p := &settingsParser{secrets: b.secrets, certificatePEM: b.certificatePEM}
	for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
		value := cm.Data[key]
		i, found := slices.BinarySearchFunc(settingKeys, key, func(k settingKey, key string) int { return strings.Compare(k.key, key) })
		if !found {
			r.warn(dataField("data", key), SettingsUnknownKey,
				"unknown key (known keys: %s); ignored", strings.Join(SettingKeys(), ", "))
			continue
		}
		if err := settingKeys[i].apply(p, &b.m.Settings, value); err != nil {
			r.warn(dataField("data", key), SettingsInvalidValue, "%v; ignored, the default applies", err)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(cm.BinaryData)) {
		r.warn(dataField("binaryData", key), SettingsBinaryData, "settings are read from data only; ignored")
	}
	s := &b.m.Settings
	if s.HTTPPort != 0 && s.HTTPPort == s.HTTPSPort {
		r.warn(dataField("data", "https-port"), SettingsPortConflict,
			"%d is also http-port; both ignored, the bind addresses' ports apply", s.HTTPSPort)
		s.HTTPPort, s.HTTPSPort = 0, 0
	}
}

// dataField names a ConfigMap key, quoted when it is not a valid key (which
// only manifests read offline can hold).
func dataField(field, key string) string {
	ok := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
			break
		}
	}
	if !ok {
		key = strconv.Quote(key)
	}
	return field + "[" + key + "]"
}

// MaxTimeout bounds every timeout setting.
const MaxTimeout = 24 * time.Hour

// parseTimeout accepts Go durations ("1m30s", "1.5s") and HAProxy's time
// format (a number of milliseconds, or a number with one of the units us,
// ms, s, m, h, d): a whole number of milliseconds from 1ms to MaxTimeout.
func parseTimeout(v string) (time.Duration, error) {
	const allowed = "want a duration such as 5s, 100ms, 1m or 1h30m (or a number of milliseconds), from 1ms to 24h"
	var d time.Duration
	num, unit := v, ""
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num, unit = v[:i], v[i:]
	}
	if num != "" && (unit == "" || unit == "d") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > int64(MaxTimeout/time.Millisecond) {
			return 0, fmt.Errorf("%q is too long: %s", v, allowed)
		}
		d = time.Duration(n) * time.Millisecond
		if unit == "d" {
			if n > 1 {
				return 0, fmt.Errorf("%q is too long: %s", v, allowed)
			}
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		var err error
		// ParseDuration reads only the duration syntax; anything else
		// (white space, other text after the value) is an error.
		d, err = time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: %s", v, allowed)
		}
	}
	switch {
	case d <= 0:
		return 0, fmt.Errorf("%q is not positive: %s", v, allowed)
	case d > MaxTimeout:
		return 0, fmt.Errorf("%q is too long: %s", v, allowed)
	case d%time.Millisecond != 0:
		return 0, fmt.Errorf("%q is not a whole number of milliseconds: %s", v, allowed)
	}
	return d, nil
}

// parseDecimal accepts only plain decimal digits (no sign, no space).
func parseDecimal(v string, lo, hi int, what string) (int, error) {
	allowed := fmt.Sprintf("want %s, a whole number from %d to %d", what, lo, hi)
	if v == "" || len(v) > 10 || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number: %s", v, allowed)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is out of range: %s", v, allowed)
	}
	return n, nil
}

// MaxMaxConn bounds the maxconn setting.
const MaxMaxConn = 10_000_000

func parseMaxConn(v string) (int, error) {
	return parseDecimal(v, 1, MaxMaxConn, "a connection limit")
}

func parsePort(v string) (int, error) {
	return parseDecimal(v, 1, 65535, "a port")
}

var sslVersions = []string{"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}

func parseSSLMinVersion(v string) (string, error) {
	if !slices.Contains(sslVersions, v) {
		return "", fmt.Errorf("%q is not a TLS version: want one of %s", v, strings.Join(sslVersions, ", "))
	}
	return v, nil
}

// tls12Ciphers are the OpenSSL names of the TLS 1.2 (and older) cipher
// suites ssl-ciphers accepts. OpenSSL ignores unknown names in a cipher
// list but fails, and HAProxy with it the whole configuration, when no name
// is left; aliases and exclusions (HIGH, !aNULL) can empty a list in ways
// only OpenSSL can tell. So only these names are accepted: each is known to
// OpenSSL 1.1.1 and 3.x at the default security level, and
// TestCipherTablesAcceptedByHAProxy has every supported HAProxy accept each
// of them alone.
var tls12Ciphers = []string{
	"AES128-CCM", "AES128-CCM8", "AES128-GCM-SHA256", "AES128-SHA", "AES128-SHA256",
	"AES256-CCM", "AES256-CCM8", "AES256-GCM-SHA384", "AES256-SHA", "AES256-SHA256",
	"DHE-DSS-AES128-GCM-SHA256", "DHE-DSS-AES128-SHA", "DHE-DSS-AES128-SHA256",
	"DHE-DSS-AES256-GCM-SHA384", "DHE-DSS-AES256-SHA", "DHE-DSS-AES256-SHA256",
	"DHE-RSA-AES128-CCM", "DHE-RSA-AES128-CCM8", "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-SHA", "DHE-RSA-AES128-SHA256",
	"DHE-RSA-AES256-CCM", "DHE-RSA-AES256-CCM8", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES256-SHA", "DHE-RSA-AES256-SHA256",
	"DHE-RSA-CHACHA20-POLY1305",
	"ECDHE-ECDSA-AES128-CCM", "ECDHE-ECDSA-AES128-CCM8", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256",
	"ECDHE-ECDSA-AES256-CCM", "ECDHE-ECDSA-AES256-CCM8", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305",
	"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256",
	"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES256-SHA384",
	"ECDHE-RSA-CHACHA20-POLY1305",
}

// tls13Suites are the TLS 1.3 cipher suites OpenSSL knows; an unknown name
// in ssl-default-bind-ciphersuites fails HAProxy's configuration.
var tls13Suites = []string{
	"TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_GCM_SHA256",
	"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
}

func parseCiphers(v string) (string, error) {
	return parseNameList(v, tls12Ciphers, "want a ':'-separated list of OpenSSL TLS 1.2 cipher names such as ECDHE-RSA-AES128-GCM-SHA256, from the list in README.md (aliases and exclusions such as HIGH or !aNULL are not accepted)")
}

func parseCipherSuites(v string) (string, error) {
	return parseNameList(v, tls13Suites, "want a ':'-separated list of TLS 1.3 cipher suites from "+strings.Join(tls13Suites, ", "))
}

// parseNameList accepts a ':'-separated list of names from known.
func parseNameList(v string, known []string, allowed string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("is empty: %s", allowed)
	}
	names := strings.Split(v, ":")
	for _, n := range names {
		if slices.Contains(known, n) {
			continue
		}
		if n == v {
			return "", fmt.Errorf("%q is not a known name: %s", v, allowed)
		}
		return "", fmt.Errorf("%q: %q is not a known name: %s", v, n, allowed)
	}
	return strings.Join(names, ":"), nil
}

// MaxLogFormatLength keeps the log-format line well inside HAProxy's line
// length limit.
const MaxLogFormatLength = 1024

// logFormatVariables are the log-format variables log-format may use: every
// one that HAProxy 2.6 and 3.0 both know. An unknown variable fails the
// configuration, so the list is closed.
var logFormatVariables = []string{
	"B", "CC", "CS", "H", "HM", "HP", "HPO", "HQ", "HU", "HV", "ID", "ST",
	"T", "TR", "Ta", "Tc", "Td", "Th", "Ti", "Tq", "Tr", "Ts", "Tt", "Tu", "Tw",
	"U", "ac", "b", "bc", "bi", "bp", "bq", "ci", "cp", "f", "fc", "fi", "fp", "ft",
	"hr", "hrl", "hs", "hsl", "lc", "ms", "o", "pid", "r", "rc", "rt",
	"s", "sc", "si", "sp", "sq", "sslc", "sslv", "t", "tr", "trg", "trl", "ts", "tsc",
}

// parseLogFormat accepts a safe subset of HAProxy's log-format: printable
// ASCII text without quotes, '\\', '#' or '$', and log-format variables
// written %var or %{flags}var, with var from logFormatVariables and flags a
// list of +Q, -Q, +X, -X, +E, -E. "%%" is a literal '%'. Sample expressions
// (%[...]) are refused: they could read environment variables (env()),
// files or anything else HAProxy can fetch.
func parseLogFormat(v string) (string, error) {
	const allowed = "want printable ASCII text without quotes, '\\', '#' or '$', and log-format variables such as %ci, %ST or %{+Q}r (listed in README.md), but no %[...] sample expression"
	if v == "" {
		return "", fmt.Errorf("is empty: %s", allowed)
	}
	if len(v) > MaxLogFormatLength {
		return "", fmt.Errorf("is %d characters long, at most %d are allowed", len(v), MaxLogFormatLength)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%q: character %q at offset %d is not allowed: %s", v, c, i, allowed)
		case strings.IndexByte("\"'\\#$", c) >= 0:
			return "", fmt.Errorf("%q: character %q at offset %d is not allowed: %s", v, c, i, allowed)
		case c != '%':
			continue
		}
		// A '%' sequence.
		j := i + 1
		if j < len(v) && v[j] == '%' {
			i = j
			continue
		}
		if j < len(v) && v[j] == '{' {
			end := strings.IndexByte(v[j:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: '{' at offset %d is not closed: %s", v, j, allowed)
			}
			flags := v[j+1 : j+end]
			if !validLogFlags(flags) {
				return "", fmt.Errorf("%q: flags {%s} at offset %d: want +Q, -Q, +X, -X, +E or -E, separated by ','", v, flags, j)
			}
			j += end + 1
		}
		k := j
		for k < len(v) && (v[k] >= 'a' && v[k] <= 'z' || v[k] >= 'A' && v[k] <= 'Z') {
			k++
		}
		name := v[j:k]
		switch {
		case j < len(v) && v[j] == '[':
			return "", fmt.Errorf("%q: the sample expression at offset %d is not allowed: %s", v, i, allowed)
		case name == "":
			return "", fmt.Errorf("%q: '%%' at offset %d is not followed by a log-format variable (write %%%% for a literal '%%'): %s", v, i, allowed)
		case !slices.Contains(logFormatVariables, name):
			return "", fmt.Errorf("%q: %%%s at offset %d is not a log-format variable; known variables: %s", v, name, i, strings.Join(logFormatVariables, " "))
		}
		i = k - 1
	}
	return v, nil
}

func validLogFlags(flags string) bool {
	if flags == "" {
		return false
	}
	for f := range strings.SplitSeq(flags, ",") {
		if len(f) != 2 || (f[0] != '+' && f[0] != '-') || strings.IndexByte("QXE", f[1]) < 0 {
			return false
		}
	}
	return true
}

// parseProxyProtocol reads use-proxy-protocol: the CIDRs or addresses of
// the balancers allowed (and then required) to send a PROXY header, as
// parseCIDRList reads them; "" is off. ingress-nginx's boolean is refused
// with what to write instead: "true" there believes a header from anyone,
// which here must be asked for by writing every address.
func parseProxyProtocol(v string) ([]netip.Prefix, error) {
	// What an invalid value leaves: the setting off, so a balancer's
	// PROXY header is read as the start of a request and fails, and no
	// address is believed from anyone.
	const off = "PROXY protocol stays off: connections that begin with a PROXY header fail"
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return nil, nil
	case "true", "false":
		return nil, fmt.Errorf("%q: want the comma-separated CIDRs or addresses of the load balancers that send the PROXY protocol, such as 10.0.0.0/8 (0.0.0.0/0, ::/0 for every address; empty for off); %s", v, off)
	}
	ps, err := parseCIDRList(v)
	if err != nil {
		return nil, fmt.Errorf("%w; %s", err, off)
	}
	return ps, nil
}

// certificate resolves default-certificate: a kubernetes.io/tls Secret
// "namespace/name", checked exactly as the Secrets of Ingress TLS entries.
func (p *settingsParser) certificate(v string) (*Certificate, error) {
	ns, name, ok := strings.Cut(v, "/")
	if !ok {
		return nil, fmt.Errorf("%q: want namespace/name of a kubernetes.io/tls Secret", v)
	}
	if err := validateNamespace(ns); err != nil {
		return nil, err
	}
	if err := validateObjectName(name); err != nil {
		return nil, err
	}
	sec := p.secrets[ns+"/"+name]
	if sec == nil {
		return nil, fmt.Errorf("Secret %s/%s not found", ns, name)
	}
	data, err := p.certificatePEM(sec)
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", ns, name, err)
	}
	return &Certificate{File: DefaultCertFile, Namespace: ns, Secret: name, PEM: data}, nil
}

// SSLCipherNames are the names ssl-ciphers accepts.
func SSLCipherNames() []string { return slices.Clone(tls12Ciphers) }

// SSLCipherSuiteNames are the names ssl-ciphersuites accepts.
func SSLCipherSuiteNames() []string { return slices.Clone(tls13Suites) }

// SSLMinVersions are the values ssl-min-version accepts.
func SSLMinVersions() []string { return slices.Clone(sslVersions) }

// LogFormatVariables are the log-format variables log-format accepts.
func LogFormatVariables() []string { return slices.Clone(logFormatVariables) }
