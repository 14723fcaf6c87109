package reload

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

// HAProxyVersion is a parsed HAProxy version such as "2.6.12-1+deb12u4".
type HAProxyVersion struct {
	Major, Minor, Patch int
	Full                string // as printed, e.g. "3.0.11-9e587df"
}

// AtLeast reports whether v is major.minor or newer.
func (v HAProxyVersion) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v HAProxyVersion) String() string { return v.Full }

// "HAProxy version 3.0.11-9e587df 2025/06/02 - https://haproxy.org/"
// (before 2.x: "HA-Proxy version 1.8.19 ...").
var versionLineRe = regexp.MustCompile(`(?m)^HA-?Proxy version ((\d+)\.(\d+)(?:\.(\d+))?\S*)`)

// bareVersionRe matches what the master CLI's "show version" prints.
var bareVersionRe = regexp.MustCompile(`^((\d+)\.(\d+)(?:\.(\d+))?\S*)`)

// Version runs `haproxy -v` and parses its version.
func Version(ctx context.Context, haproxyBin string) (HAProxyVersion, error) {
	out, err := exec.CommandContext(ctx, haproxyBin, "-v").CombinedOutput()
	if err != nil {
		return HAProxyVersion{}, fmt.Errorf("%s -v: %w: %s", haproxyBin, err, out)
	}
	return parseVersion(versionLineRe, string(out))
}

func parseVersion(re *regexp.Regexp, s string) (HAProxyVersion, error) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return HAProxyVersion{}, fmt.Errorf("no HAProxy version in %q", firstLine(s))
	}
	v := HAProxyVersion{Full: m[1]}
	v.Major, _ = strconv.Atoi(m[2])
	v.Minor, _ = strconv.Atoi(m[3])
	if m[4] != "" {
		v.Patch, _ = strconv.Atoi(m[4])
	}
	return v, nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
