package reload

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// HasListener against HAProxy itself: whatever it finds a listener in,
// `haproxy -c` accepts (so a reload may stand in for the check); the
// configurations it finds none in are the ones haproxy -c refuses as
// "no listener", or layouts it declines to judge.
func TestHasListener(t *testing.T) {
	const head = "global\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 5s\n"
	const be = "backend b\n    server s1 127.0.0.1:9\n"
	cases := []struct {
		name, cfg string
		want      bool
		noListen  bool // haproxy -c refuses it for having no listener
	}{
		{"frontend with bind", head + "frontend f\n    bind 127.0.0.1:%PORT%\n    default_backend b\n" + be, true, false},
		{"listen with bind", head + "listen l\n    bind 127.0.0.1:%PORT%\n    server s1 127.0.0.1:9\n", true, false},
		{"sections indented", head + "  frontend f\n\tbind 127.0.0.1:%PORT%\n  default_backend b\n" + be, true, false},
		{"backends only", head + be, false, true},
		{"frontend without bind", head + "frontend f\n    default_backend b\n" + be, false, true},
		{"bind commented out", head + "frontend f\n    # bind 127.0.0.1:%PORT%\n    default_backend b\n" + be, false, true},
		{"bind only in a peers section", head + "peers p\n    bind 127.0.0.1:%PORT%\n    server me\nfrontend f\n    default_backend b\n" + be, false, true},
		{"disabled frontend", head + "frontend f\n    disabled\n    bind 127.0.0.1:%PORT%\n    default_backend b\n" + be, false, true},
		{"empty", "", false, true},
	}
	for _, hb := range haproxyBins(t) {
		for _, c := range cases {
			cfg := strings.ReplaceAll(c.cfg, "%PORT%", "10001")
			if got := HasListener([]byte(cfg)); got != c.want {
				t.Errorf("%s: HasListener = %v, want %v", c.name, got, c.want)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, ConfigName)
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Check(context.Background(), hb.path, path)
			noListener := err != nil && strings.Contains(err.Error(), "no listener")
			switch {
			case c.want && err != nil:
				t.Errorf("%s, HAProxy %s: HasListener, but haproxy -c refuses it: %v", c.name, hb.name, err)
			case c.noListen != noListener:
				t.Errorf("%s, HAProxy %s: haproxy -c: %v, want no-listener refusal %v", c.name, hb.name, err, c.noListen)
			}
		}
	}
}
