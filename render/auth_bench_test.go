package render_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// benchHashes are well-formed hashes of each scheme and cost: crypt(3)'s
// time depends on the scheme and its parameters only, not on the password,
// so they need not be hashes of anything in particular.
var benchHashes = []struct{ name, hash string }{
	{"md5crypt", "$1$saltsalt$" + strings.Repeat("A", 22)},
	{"sha256-rounds1000", "$5$rounds=1000$saltsalt$" + strings.Repeat("A", 43)},
	{"sha256-rounds5000", "$5$saltsalt$" + strings.Repeat("A", 43)},
	{"sha256-rounds10000", "$5$rounds=10000$saltsalt$" + strings.Repeat("A", 43)},
	{"sha512-rounds1000", "$6$rounds=1000$saltsalt$" + strings.Repeat("A", 86)},
	{"sha512-rounds5000", "$6$saltsalt$" + strings.Repeat("A", 86)},
	{"sha512-rounds10000", "$6$rounds=10000$saltsalt$" + strings.Repeat("A", 86)},
	{"bcrypt-cost4", "$2y$04$abcdefghijklmnopqrstuu" + strings.Repeat("A", 31)},
	{"bcrypt-cost5", "$2y$05$abcdefghijklmnopqrstuu" + strings.Repeat("A", 31)},
	{"bcrypt-cost6", "$2y$06$abcdefghijklmnopqrstuu" + strings.Repeat("A", 31)},
	{"bcrypt-cost8", "$2y$08$abcdefghijklmnopqrstuu" + strings.Repeat("A", 31)},
	{"yescrypt-j75-Nr8192", "$y$j75$abcdefghijklmnop$" + strings.Repeat("A", 43)},
	{"yescrypt-j85-Nr16384", "$y$j85$abcdefghijklmnop$" + strings.Repeat("A", 43)},
	{"yescrypt-j7T-Nr32768", "$y$j7T$abcdefghijklmnop$" + strings.Repeat("A", 43)},
	{"yescrypt-j9T-Nr131072", "$y$j9T$abcdefghijklmnop$" + strings.Repeat("A", 43)},
}

// BenchmarkUserlistParse times `haproxy -c` of a configuration with a
// userlist of BENCH_USERS (default 20) users, all with the same kind of
// hash, minus the same configuration with insecure-password users (no
// crypt), on both versions: what HAProxy spends in crypt(3) per user while
// it parses, which is also what one request checking that hash costs the
// thread serving it. BENCHMARKS.md records the figures.
//
//	go test ./render -run '^$' -bench UserlistParse -benchtime 3x
func BenchmarkUserlistParse(b *testing.B) {
	users := 20
	if v := os.Getenv("BENCH_USERS"); v != "" {
		fmt.Sscan(v, &users)
	}
	dir := b.TempDir()
	write := func(name, password string) string {
		var sb strings.Builder
		sb.WriteString("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nuserlist u\n")
		for i := range users {
			fmt.Fprintf(&sb, "    user u%d %s\n", i, password)
		}
		sb.WriteString("\nfrontend f\n    bind 127.0.0.1:1\n    http-request auth unless { http_auth(u) }\n    default_backend b\n\nbackend b\n    server s 127.0.0.1:1\n")
		p := filepath.Join(dir, name+".cfg")
		if err := os.WriteFile(p, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	base := write("base", "insecure-password x")
	check := func(bin, cfg string) time.Duration {
		start := time.Now()
		if out, err := exec.Command(bin, "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
			b.Fatalf("haproxy -c %s: %v\n%s", cfg, err, out)
		}
		return time.Since(start)
	}
	for _, v := range []string{"2.6", "3.0"} {
		bin := testenv.HAProxies(b)[v]
		for _, h := range benchHashes {
			cfg := write(h.name, "password "+h.hash)
			b.Run(v+"/"+h.name, func(b *testing.B) {
				var extra time.Duration
				for range b.N {
					extra += check(bin, cfg) - check(bin, base)
				}
				b.ReportMetric(float64(extra.Microseconds())/float64(b.N)/float64(users)/1000, "ms/hash")
				b.ReportMetric(float64(extra.Microseconds())/float64(b.N)/1000, "ms/parse")
			})
		}
	}
}
