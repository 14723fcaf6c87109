package reload

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// HasListener reads haproxy.cfg at every reload: at 50k Ingresses about a
// million lines. It splits out each line's first word in place; splitting
// every line into words (bytes.Fields) made a slice per line.
func TestHasListenerAllocatesNothing(t *testing.T) {
	var b strings.Builder
	b.WriteString("global\n  log stdout format raw local0 info\ndefaults\n  mode http\n")
	for i := range 2000 {
		b.WriteString("backend b" + strconv.Itoa(i) + "\n    balance roundrobin\n    server s1 10.0.0.1:80 id 1\n    server s2 127.0.0.1:1 id 2 disabled\n\n")
	}
	b.WriteString("frontend f\n\tbind 127.0.0.1:80\r\n    default_backend b0\n")
	cfg := []byte(b.String())
	var found bool
	if n := testing.AllocsPerRun(5, func() { found = HasListener(cfg) }); n != 0 {
		t.Errorf("HasListener of %d bytes: %.0f allocations, want 0", len(cfg), n)
	}
	if !found {
		t.Error("HasListener found no listener")
	}
}

// A line's first word is the one bytes.Fields gives, whatever the blanks
// around it (tabs, carriage returns, Unicode spaces).
func TestHasListenerFirstWord(t *testing.T) {
	fields := func(cfg string) bool { // the way HasListener read lines before
		inProxy, found := false, false
		for _, line := range strings.Split(cfg, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0][0] == '#' {
				continue
			}
			if sectionKeywords[f[0]] {
				inProxy = f[0] == "frontend" || f[0] == "listen"
				continue
			}
			switch f[0] {
			case "disabled":
				return false
			case "bind":
				found = found || inProxy
			}
		}
		return found
	}
	blanks := []string{"", " ", "\t", "\r", "\u00a0", "\u2003", "\v"}
	words := []string{"frontend", "listen", "backend", "bind", "disabled", "#bind", "bind\u00a0x", "frontend\rf"}
	for _, pre := range blanks {
		for _, post := range blanks {
			for _, sec := range words {
				for _, w := range words {
					cfg := pre + sec + post + "x\n" + pre + w + post + "1\n" + post + "bind" + pre + "\n"
					if got, want := HasListener([]byte(cfg)), fields(cfg); got != want {
						t.Fatalf("%q: HasListener = %v, bytes.Fields reading %v", cfg, got, want)
					}
				}
			}
		}
	}
}

// pieces is a Content that writes its bytes in pieces of n bytes, cutting
// lines anywhere, as a file kept in pieces may.
type pieces struct {
	b []byte
	n int
}

func (p pieces) Size() int { return len(p.b) }

func (p pieces) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for b := p.b; len(b) > 0; {
		k := min(p.n, len(b))
		n, err := w.Write(b[:k])
		total += int64(n)
		if err != nil {
			return total, err
		}
		b = b[k:]
	}
	return total, nil
}

// ContentHasListener reads pieces cut anywhere as HasListener reads the
// whole file.
func TestContentHasListenerPieces(t *testing.T) {
	cfgs := []string{
		"frontend f\n    bind :80\n",
		"frontend f\n    bind :80",
		"backend b\n    bind :80\nfrontend f\n",
		"frontend f\n  disabled\n  bind :80\n",
		"listen l\n\tbind :80\r\n# bind\n",
		"frontend f\n    # bind :80\nlisten\n",
		"",
	}
	for _, cfg := range cfgs {
		want := HasListener([]byte(cfg))
		for n := 1; n <= len(cfg)+1; n++ {
			got, err := ContentHasListener(pieces{[]byte(cfg), n})
			if err != nil || got != want {
				t.Errorf("%q in pieces of %d: %v, %v; HasListener of the whole: %v", cfg, n, got, err, want)
			}
		}
	}
}
