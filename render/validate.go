package render

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Every value taken from an object passes one of these checks before it can
// reach a generated file. They are strict on purpose: what they let through
// is plain text in HAProxy's configuration, map and crt-list syntax, with no
// character HAProxy would interpret (whitespace, quotes, '#', '$', '\\',
// control characters).

// MaxPathLength bounds paths so that a map line always fits HAProxy's line
// buffer.
const MaxPathLength = 2048

// validateHost accepts a lower-case DNS-1123 subdomain or a wildcard
// "*.<subdomain>", as the Kubernetes API does for Ingress hosts.
func validateHost(host string) error {
	if host == "" {
		return fmt.Errorf("must not be empty")
	}
	if net.ParseIP(host) != nil {
		return fmt.Errorf("%q: must be a DNS name, not an IP address", host)
	}
	if isSimpleSubdomain(strings.TrimPrefix(host, "*.")) {
		return nil
	}
	var errs []string
	if strings.HasPrefix(host, "*.") {
		errs = validation.IsWildcardDNS1123Subdomain(host)
	} else {
		errs = validation.IsDNS1123Subdomain(host)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%q: %s", host, strings.Join(errs, "; "))
	}
	return nil
}

// validateAnnotationPath accepts a path an annotation gives (app-root,
// rewrite-target, health-check-path): a valid path with one leading '/'.
// "//evil.example/x" is a valid path, but as a redirect's Location a
// browser reads it as another site, and a rewritten request line
// starting with "//" is taken for an authority by some servers.
func validateAnnotationPath(p string) error {
	if err := validatePath(p); err != nil {
		return err
	}
	if strings.HasPrefix(p, "//") {
		return fmt.Errorf("%s: must start with one '/', not '//' (a browser reads //host/... as another site)", truncate(p))
	}
	return nil
}

// validatePath accepts absolute paths made only of RFC 3986 path characters
// (unreserved, sub-delims except the single quote, ':', '@', '/', and
// well-formed percent-encodings).
func validatePath(p string) error {
	if p == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(p) > MaxPathLength {
		return fmt.Errorf("must be at most %d characters, got %d", MaxPathLength, len(p))
	}
	// Values are shown cut (truncate): a problem names the value, it
	// does not repeat a kilobyte of it.
	if p[0] != '/' {
		return fmt.Errorf("%s: must start with '/'", truncate(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return fmt.Errorf("%s: '%%' at offset %d is not followed by two hex digits", truncate(p), i)
			}
			i += 2
		case c == '?':
			return fmt.Errorf("%s: must not contain '?': the query string never takes part in matching", truncate(p))
		default:
			// Name the character, not its first byte: "/ü" is not "Ã".
			r, _ := utf8.DecodeRuneInString(p[i:])
			return fmt.Errorf("%s: character %q at offset %d is not allowed in a path", truncate(p), r, i)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isSimpleSubdomain is a fast, allocation-free test for the common case of
// a lower-case DNS-1123 subdomain: dot-separated labels of [a-z0-9-] that
// neither start nor end with '-', 253 characters at most. It only ever says
// yes to names apimachinery's regular expressions accept; anything else is
// left to them for the verdict and the message.
func isSimpleSubdomain(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	labelStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == labelStart || s[labelStart] == '-' || s[i-1] == '-' {
				return false
			}
			labelStart = i + 1
			continue
		}
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isSimpleLabel is the same for a single DNS-1123 label (63 characters).
func isSimpleLabel(s string) bool {
	return len(s) <= validation.DNS1123LabelMaxLength && strings.IndexByte(s, '.') < 0 && isSimpleSubdomain(s)
}

func validateNamespace(ns string) error {
	if isSimpleLabel(ns) {
		return nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

func validateObjectName(name string) error {
	if isSimpleSubdomain(name) {
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

func validateServiceName(name string) error {
	// DNS-1035 labels also start with a letter.
	if isSimpleLabel(name) && name[0] >= 'a' && name[0] <= 'z' {
		return nil
	}
	if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
		return fmt.Errorf("%q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

func validatePortName(name string) error {
	if errs := validation.IsValidPortName(name); len(errs) > 0 {
		return fmt.Errorf("%q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// ParseBind checks a listen address such as ":80", "0.0.0.0:80" or
// "[::]:443" and returns it in the form HAProxy's bind line takes.
func ParseBind(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bind address %q: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("bind address %q: port must be a number from 1 to 65535", addr)
	}
	if host == "" {
		return ":" + port, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return "", fmt.Errorf("bind address %q: host must be empty or an IP address", addr)
	}
	return netip.AddrPortFrom(ip, uint16(n)).String(), nil
}

// CheckArgBytes refuses the bytes no quoting carries through HAProxy's
// parser: the ASCII control characters (NUL, CR, LF, tab...) and DEL.
// Values are checked with it here; haproxycfg's quoting checks again.
func CheckArgBytes(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character %q at offset %d cannot be written in HAProxy's configuration", rune(c), i)
		}
	}
	return nil
}
