package reload

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// HasPrometheusExporter reports whether haproxyBin was built with HAProxy's
// own Prometheus exporter (USE_PROMEX=1): `haproxy -vv` then lists
// "prometheus-exporter" among its "Available services". Only then may a
// configuration use `http-request use-service prometheus-exporter`; without
// it HAProxy refuses the whole configuration.
func HasPrometheusExporter(ctx context.Context, haproxyBin string) (bool, error) {
	out, err := exec.CommandContext(ctx, haproxyBin, "-vv").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%s -vv: %w: %s", haproxyBin, err, firstLine(string(out)))
	}
	services, ok := availableServices(string(out))
	if !ok {
		return false, fmt.Errorf("%s -vv: no \"Available services\" line in %q", haproxyBin, firstLine(string(out)))
	}
	for _, s := range services {
		if s == "prometheus-exporter" {
			return true, nil
		}
	}
	return false, nil
}

// availableServices parses the "Available services :" part of `haproxy -vv`:
// the names on that line and on indented lines right after it ("none" when
// there are none).
func availableServices(vv string) ([]string, bool) {
	lines := strings.Split(vv, "\n")
	for i, l := range lines {
		rest, found := strings.CutPrefix(l, "Available services :")
		if !found {
			continue
		}
		names := strings.Fields(rest)
		for _, c := range lines[i+1:] {
			if c == "" || (c[0] != ' ' && c[0] != '\t') {
				break
			}
			names = append(names, strings.Fields(c)...)
		}
		if len(names) == 1 && names[0] == "none" {
			names = nil
		}
		return names, true
	}
	return nil, false
}
