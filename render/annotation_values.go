package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The value parsers and validators of the annotation table: every value
// an annotation accepts is read here into a typed one, or refused with an
// error that says what is wanted (and shows a long value cut).
func setTri(v string, t *Tri) error {
	switch v {
	case "true":
		*t = True
	case "false":
		*t = False
	default:
		return fmt.Errorf("want %s", allowedBool)
	}
	return nil
}

func setRedirect(v string, code int, a *parsedAnnotations) error {
	if err := validateRedirectURL(v); err != nil {
		return err
	}
	if a.route.Redirect != "" && a.route.RedirectCode != code {
		return fmt.Errorf("permanent-redirect and temporal-redirect are both set; want one")
	}
	a.route.Redirect, a.route.RedirectCode = v, code
	return nil
}

// validateRedirectURL accepts absolute http(s) URLs with a valid host and
// only RFC 3986 characters (no quotes, spaces, backslashes or '%' other
// than percent-encodings).
func validateRedirectURL(v string) error {
	const allowed = "want an absolute http or https URL"
	if len(v) > 2048 {
		return fmt.Errorf("longer than 2048 characters: %s", allowed)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&()*+,;=:@/?#[]", c) >= 0:
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
		default:
			return fmt.Errorf("character %q at offset %d is not allowed in a URL: %s", c, i, allowed)
		}
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%s", allowed)
	}
	if err := validateHost(u.Hostname()); err != nil || strings.HasPrefix(u.Hostname(), "*") {
		if _, ipErr := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); ipErr != nil {
			return fmt.Errorf("host %q: %s", u.Hostname(), allowed)
		}
	}
	return nil
}

// maxCIDRs bounds a source range list.
const maxCIDRs = 1000

// parseCIDRList reads "10.0.0.0/8, 192.168.1.1" into prefixes (an address
// is a /32 or /128), masked and without duplicates, in the order given.
func parseCIDRList(v string) ([]netip.Prefix, error) {
	parts := strings.Split(v, ",")
	if len(parts) > maxCIDRs {
		return nil, fmt.Errorf("%d entries: want at most %d CIDRs", len(parts), maxCIDRs)
	}
	var out []netip.Prefix
	for _, part := range parts {
		s := strings.Trim(part, " ")
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					// PrefixFrom would drop the zone silently: the range
					// would not be the one written.
					return nil, fmt.Errorf("%s has an IPv6 zone (%%%s): want an address without a zone", truncate(s), a.Zone())
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%s is not a CIDR or an address: want comma-separated CIDRs such as 10.0.0.0/8, 192.168.1.7", truncate(s))
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// unmapBits is what an IPv4-mapped IPv6 prefix loses when unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// parseSize reads a body size: bytes, or a number with k, m or g (powers
// of 1024, either case), up to 1g.
func parseSize(v string) (int64, error) {
	const allowed = "want a size in bytes or with k, m, g or t (1k = 1024), up to 1t"
	num, mult := v, int64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			num, mult = v[:n-1], 1<<10
		case 'm', 'M':
			num, mult = v[:n-1], 1<<20
		case 'g', 'G':
			num, mult = v[:n-1], 1<<30
		case 't', 'T':
			num, mult = v[:n-1], 1<<40
		}
	}
	if num == "" || len(num) > 10 || strings.Trim(num, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a size: %s", truncate(v), allowed)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > 1<<40 || n*mult > 1<<40 {
		return 0, fmt.Errorf("%s is too large: %s", truncate(v), allowed)
	}
	return n * mult, nil
}

// parseTokenList reads "GET, POST" or "X-A,X-B": comma-separated HTTP
// tokens, returned joined by ", ".
func parseTokenList(v, what string) (string, error) {
	var out []string
	for _, part := range strings.Split(v, ",") {
		s := strings.Trim(part, " ")
		if s == "" || len(s) > 64 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return "", fmt.Errorf("%s is not one of the %s: want comma-separated %s (letters, digits, '-', '_')", truncate(s), what, what)
		}
		out = append(out, s)
	}
	if len(out) > 64 {
		return "", fmt.Errorf("more than 64 %s", what)
	}
	return strings.Join(out, ", "), nil
}

// parseOrigins reads "*" or comma-separated origins.
func parseOrigins(v string) ([]string, error) {
	if strings.TrimSpace(v) == "*" {
		return []string{"*"}, nil
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		s := strings.Trim(part, " ")
		scheme, rest, ok := strings.Cut(s, "://")
		host, port, hasPort := strings.Cut(rest, ":")
		bad := !ok || (scheme != "http" && scheme != "https") || validateHost(host) != nil || strings.HasPrefix(host, "*")
		if hasPort {
			if _, err := parsePort(port); err != nil {
				bad = true
			}
		}
		if bad {
			return nil, fmt.Errorf("%s is not an origin: want * or comma-separated origins such as https://example.com or http://localhost:8080", truncate(s))
		}
		out = append(out, s)
	}
	if len(out) > 100 {
		return nil, fmt.Errorf("more than 100 origins")
	}
	return out, nil
}

// checkText accepts printable text (no control characters) of at most n
// runes, valid UTF-8.
func checkText(v string, n int) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8: want printable text")
	}
	if utf8.RuneCountInString(v) > n {
		return fmt.Errorf("longer than %d characters", n)
	}
	if err := CheckArgBytes(v); err != nil {
		return fmt.Errorf("%v: want printable text", err)
	}
	return nil
}

const (
	canaryNameSyntax  = "a header or cookie name: letters, digits, '-', '_' and '.', at most 64"
	canaryValueSyntax = "letters, digits and - _ . ~ : / + = , @ (at most 128)"
	canaryValueChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~:/+=,@"
	maxCanaryTotal    = 1000000
)

// setCanaryName accepts a header or cookie name that needs no quoting
// inside a sample fetch's parentheses.
func setCanaryName(v string, name *string) error {
	if v == "" || len(v) > 64 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("want %s", canaryNameSyntax)
	}
	*name = v
	return nil
}

// parseCount reads a whole decimal number from lo to hi.
func parseCount(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("want a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// truncate shows a value in a problem: quoted Go-style (so control
// characters are visible) and cut at 64 bytes.
func truncate(v string) string {
	if len(v) > 64 {
		return strconv.Quote(v[:64]) + "..."
	}
	return strconv.Quote(v)
}

// MaxCookieAge is the longest an affinity cookie may live: what browsers
// keep a cookie at most (RFC 6265bis caps Max-Age at 400 days).
const MaxCookieAge = 400 * 24 * time.Hour

// parseCookieAge reads a cookie's life: a Go duration, a number of days
// ("7d") or of milliseconds, in whole seconds (HAProxy's and Max-Age's
// unit) from 1s to MaxCookieAge.
func parseCookieAge(v string) (time.Duration, error) {
	const want = "want " + allowedCookieAge
	var d time.Duration
	num, unit := v, ""
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num, unit = v[:i], v[i:]
	}
	switch {
	case num != "" && len(num) <= 12 && (unit == "" || unit == "d"):
		n, _ := strconv.ParseInt(num, 10, 64)
		d = time.Duration(n) * time.Millisecond
		if unit == "d" {
			if n > int64(MaxCookieAge/(24*time.Hour)) {
				return 0, fmt.Errorf("%s is too long: %s", truncate(v), want)
			}
			d = time.Duration(n) * 24 * time.Hour
		}
	default:
		var err error
		if d, err = time.ParseDuration(v); err != nil || len(v) > 32 {
			return 0, fmt.Errorf("%s is not a duration: %s", truncate(v), want)
		}
	}
	switch {
	case d < time.Second:
		return 0, fmt.Errorf("%s is shorter than a second: %s", truncate(v), want)
	case d > MaxCookieAge:
		return 0, fmt.Errorf("%s is too long: %s", truncate(v), want)
	case d%time.Second != 0:
		return 0, fmt.Errorf("%s is not a whole number of seconds: %s", truncate(v), want)
	}
	return d, nil
}

// validateCookieDomain accepts a DNS name (letters, digits, '-', dots
// between labels of at most 63 characters), optionally with one leading
// dot, at most 253 characters: nothing HAProxy or a browser reads as
// another attribute.
func validateCookieDomain(v string) error {
	name := strings.TrimPrefix(v, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("want a DNS domain of 1 to 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%s: want a DNS domain (letters, digits and '-' in dot-separated labels), optionally with a leading '.'", truncate(v))
		}
	}
	return nil
}

// VhostFor is upstream-vhost's value for a backend of Service
// namespace/service port: ingress-nginx's variables for them replaced.
func VhostFor(v, service, namespace, port string) string {
	if !strings.Contains(v, "$") {
		return v
	}
	return strings.NewReplacer("$service_name", service, "$namespace", namespace, "$service_port", port).Replace(v)
}

// validateHostPort accepts a DNS name or an IP address (IPv6 in brackets),
// with an optional port: what a Host header may hold.
func validateHostPort(v string) error {
	const want = "want a host name or address, with an optional :port"
	host := v
	if i := strings.LastIndexByte(v, ':'); i >= 0 && !strings.HasSuffix(v, "]") {
		host = v[:i]
		if _, err := parseDecimal(v[i+1:], 1, 65535, "a port"); err != nil {
			return fmt.Errorf("%s: %s", truncate(v), want)
		}
	}
	if h, ok := strings.CutPrefix(host, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(h, "]"))
		if err != nil || !a.Is6() || a.Zone() != "" || !strings.HasSuffix(h, "]") {
			return fmt.Errorf("%s: %s", truncate(v), want)
		}
		return nil
	}
	if strings.HasPrefix(host, ".") || validateCookieDomain(host) != nil {
		return fmt.Errorf("%s: %s", truncate(v), want)
	}
	return nil
}
