package reload

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The stop notices of an old worker are summed into one entry; every other
// line is relayed as it came, in order, whatever the chunks they arrive in.
func TestOutputLogSumsStopNotices(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	w := newOutputLog(zap.New(core), 20*time.Millisecond)
	out := "[NOTICE]   (10) : Reloading HAProxy\r\n" +
		"[WARNING]  (11) : Proxy fe stopped (cumulated conns: FE: 7, BE: 0).\n" +
		"Proxy fe stopped (cumulated conns: FE: 7, BE: 0).\n" +
		"127.0.0.1:4000 [07/Dec/2026:10:00:00.000] fe be/s1 0/0/0/0/0 200 12 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"\n" +
		"[WARNING]  (11) : Proxy be stopped (cumulated conns: FE: 0, BE: 5).\n" +
		"Proxy be stopped (cumulated conns: FE: 0, BE: 5).\n" +
		"[WARNING]  (12) : Proxy fe stopped (cumulated conns: FE: 1, BE: 0).\n" +
		"Proxy backend_not_a_notice stopped for good\n"
	for i := 0; i < len(out); i += 5 {
		if _, err := w.Write([]byte(out[i:min(i+5, len(out))])); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"[NOTICE]   (10) : Reloading HAProxy", "127.0.0.1:4000 [07/Dec/2026:10:00:00.000] fe be/s1 0/0/0/0/0 200 12 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"",
		"Proxy backend_not_a_notice stopped for good"}
	var got []string
	for _, e := range logs.TakeAll() {
		got = append(got, e.Message)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("relayed before the sum:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	sums := logs.TakeAll()
	if len(sums) != 1 {
		t.Fatalf("%d entries after the notices, want their sum", len(sums))
	}
	f := sums[0].ContextMap()
	if sums[0].Message != "HAProxy's old worker stopped its proxies" || f["proxies"] != int64(3) || f["lines"] != int64(5) ||
		f["frontend_connections"] != int64(8) || f["backend_connections"] != int64(5) || fmt.Sprint(f["workers"]) != "[11 12]" {
		t.Errorf("sum: %s %v", sums[0].Message, f)
	}
}

// stopNoticeOracle is the notice's grammar as a regular expression, the
// way it was read before parseStopNotice: the two must agree on every line.
var stopNoticeOracle = regexp.MustCompile(`^(?:\[WARNING\] +\((\d+)\) : )?Proxy \S+ stopped \(cumulated conns: FE: (\d+), BE: (\d+)\)\.$`)

// parseStopNotice reads what the regular expression matches, and nothing
// else: notices and near misses, each also cut short at every length and
// with each byte replaced by a few that matter to the grammar.
func TestParseStopNoticeAgreesWithGrammar(t *testing.T) {
	lines := []string{
		"[WARNING]  (11) : Proxy fe stopped (cumulated conns: FE: 7, BE: 0).",
		"[WARNING] (1) : Proxy be_default_x-y_80 stopped (cumulated conns: FE: 0, BE: 12345).",
		"Proxy fe stopped (cumulated conns: FE: 7, BE: 0).",
		"Proxy stopped (cumulated conns: FE: 7, BE: 0).",
		"Proxy a b stopped (cumulated conns: FE: 7, BE: 0).",
		"[WARNING]  (x) : Proxy fe stopped (cumulated conns: FE: 7, BE: 0).",
		"[WARNING]  (11) : Proxy fe stopped (cumulated conns: FE: 7, BE: 0). ",
		"[NOTICE]   (11) : Proxy fe stopped (cumulated conns: FE: 7, BE: 0).",
		"Proxy backend_not_a_notice stopped for good",
	}
	var cases []string
	for _, l := range lines {
		cases = append(cases, l)
		for i := range len(l) {
			cases = append(cases, l[:i])
			for _, c := range []byte{' ', '\t', '\v', '9', 'x', '(', ')', '.', ','} {
				cases = append(cases, l[:i]+string(c)+l[i+1:])
			}
		}
	}
	for _, c := range cases {
		n, ok := parseStopNotice([]byte(c))
		m := stopNoticeOracle.FindStringSubmatch(c)
		if ok != (m != nil) {
			t.Fatalf("%q: a notice %v, the grammar says %v", c, ok, m != nil)
		}
		if !ok {
			continue
		}
		pid := -1
		if m[1] != "" {
			pid, _ = strconv.Atoi(m[1])
		}
		fe, _ := strconv.ParseInt(m[2], 10, 64)
		be, _ := strconv.ParseInt(m[3], 10, 64)
		if n != (stopNotice{pid: pid, fe: fe, be: be}) {
			t.Fatalf("%q: read %+v, want pid %d, FE %d, BE %d", c, n, pid, fe, be)
		}
	}
	notice := []byte(lines[0])
	if a := testing.AllocsPerRun(100, func() { parseStopNotice(notice) }); a != 0 {
		t.Errorf("reading a notice allocates %v times, want none", a)
	}
}

// Against HAProxy itself: a reload of a configuration with many proxies
// leaves one entry about the old worker's stop notices (both of each
// proxy's, on stderr and through its log line) and none per proxy.
func TestOutputLogOfAReload(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		const backends = 200
		dir := shortTempDir(t)
		port := freePort(t)
		var cfg strings.Builder
		cfg.WriteString("global\n    log stdout format raw local0 info\n\ndefaults\n    mode http\n    log global\n" +
			"    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\n")
		fmt.Fprintf(&cfg, "frontend fe\n    bind 127.0.0.1:%d\n    http-request return status 200\n\n", port)
		for i := range backends {
			fmt.Fprintf(&cfg, "backend b%d\n    server s1 127.0.0.1:1 disabled\n\n", i)
		}
		writeFiles(t, dir, Files{ConfigName: []byte(cfg.String())})
		core, logs := observer.New(zapcore.InfoLevel)
		config := filepath.Join(dir, ConfigName)
		p := NewProcess(ProcessOptions{Start: true, Bin: hb.path, Config: config, Socket: filepath.Join(dir, "m.sock"),
			StopGrace: 2 * time.Second, StartTimeout: 10 * time.Second, SocketWait: 10 * time.Second,
			Output: newOutputLog(zap.New(core), 100*time.Millisecond)})
		p.Start()
		t.Cleanup(func() {
			_ = p.Stop()
			for _, pid := range processesOf(config) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
		waitProcess(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.Conn().Reload(ctx); err != nil {
			t.Fatal(err)
		}
		var sum *observer.LoggedEntry
		eventually(t, "the stop notices' sum", func() bool {
			for _, e := range logs.All() {
				if e.Message == "HAProxy's old worker stopped its proxies" {
					sum = &e
					return true
				}
			}
			return false
		})
		// The frontend and every backend (and on 2.6 the internal HTTP
		// client's proxy), each on stderr and through its log line.
		f := sum.ContextMap()
		proxies, _ := f["proxies"].(int64)
		if proxies < backends+1 || proxies > backends+2 || f["lines"] != 2*proxies {
			t.Errorf("sum: %v; want %d or %d proxies, two lines each", f, backends+1, backends+2)
		}
		for _, e := range logs.All() {
			if strings.Contains(e.Message, " stopped (cumulated conns") {
				t.Fatalf("a stop notice relayed: %s", e.Message)
			}
		}
	})
}
