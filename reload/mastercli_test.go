package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// startSupervised runs HAProxy under a Supervisor until the test ends and waits
// until it is ready. Cleanup stops it and, as a last resort, kills its process group.
func startSupervised(t *testing.T, bin, cfg, sock string) *Supervisor {
	t.Helper()
	sup := &Supervisor{Bin: bin, Config: cfg, Socket: sock, StopGrace: 2 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Log: zaptest.NewLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sup.Run(ctx); err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}()
	t.Cleanup(func() {
		pid := sup.PID()
		cancel()
		wg.Wait()
		if pid != 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // no-op when already gone
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := sup.WaitReady(wctx); err != nil {
		t.Fatalf("haproxy did not become ready: %v\noutput:\n%s", err, sup.OutputTail())
	}
	return sup
}

// get sends GET / with the given Host header to 127.0.0.1:port on a fresh
// connection (so each request sees the current worker) and returns
// "<status> <body>".
func get(t *testing.T, port int, host string) string {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s via :%d: %v", host, port, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// eventually retries cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseShowProc(t *testing.T) {
	// 2.6.12 during a reload with a draining old worker.
	out := "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
		"4972            master          1 [failed: 0]   0d00h04m21s     2.6.12-1+deb12u4\n" +
		"# workers\n15588           worker          0               0d00h00m00s     2.6.12-1+deb12u4\n" +
		"# old workers\n4973            worker          1               0d00h04m21s     2.6.12-1+deb12u4\n" +
		"# programs\n"
	st, err := parseShowProc(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Master.PID != 4972 || st.Reloads != 1 || st.FailedReloads != 0 || st.CurrentWorker() != 15588 ||
		len(st.OldWorkers) != 1 || st.OldWorkers[0].PID != 4973 || st.OldWorkers[0].Reloads != 1 ||
		st.Master.Version != "2.6.12-1+deb12u4" {
		t.Fatalf("parsed %+v", st)
	}
	st, err = parseShowProc("#<PID> <type> <reloads> <uptime> <version>\n14568 master 2 [failed: 1] 0d00h00m33s 3.0.11-9e587df\n# workers\n14599 worker 1 0d00h00m33s 3.0.11-9e587df\n# programs\n")
	if err != nil || st.FailedReloads != 1 || st.Reloads != 2 || len(st.OldWorkers) != 0 {
		t.Fatalf("parsed %+v %v", st, err)
	}
	if _, err := parseShowProc("Unknown command"); err == nil {
		t.Fatal("want error")
	}
}

func TestCLIArg(t *testing.T) {
	got, err := cliArgs("maps/a b.map", `x;y\z`)
	if err != nil || got != `maps/a\ b.map x\;y\\z` {
		t.Fatalf("got %q %v", got, err)
	}
	for _, bad := range []string{"", "a\nb"} {
		if _, err := cliArg(bad); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

// TestReload: a Store-managed config served by a supervised master-worker HAProxy;
// Apply + Reload gives a new worker generation that serves the new config.
func TestReload(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		store, err := NewStore(filepath.Join(tmp, "cfg"))
		if err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		validate := Validator(ctx, hb.path, 0)
		v1 := Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")}
		if _, err := store.Apply(ctx, v1, validate); err != nil {
			t.Fatal(err)
		}
		sup := startSupervised(t, hb.path, store.ConfigPath(), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()

		v, err := cli.Version(ctx)
		if err != nil || v.Major != hb.major || v.Minor != hb.minor {
			t.Fatalf("master version %+v %v", v, err)
		}
		st, err := cli.ShowProc(ctx)
		if err != nil || st.Master.PID != sup.PID() || st.CurrentWorker() == 0 {
			t.Fatalf("show proc: %+v %v", st, err)
		}
		body := get(t, port, "a.example")
		if field(body, "route") != "a1" || field(body, "gen") != "1" || field(body, "pid") != strconv.Itoa(st.CurrentWorker()) {
			t.Fatalf("before reload: %q (worker %d)", body, st.CurrentWorker())
		}

		// Hold a connection with a half-sent request: the old worker must keep it
		// and is then listed as an old worker.
		hold, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		if _, err := io.WriteString(hold, "GET / HTTP/1.1\r\nHost: a.example\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let the worker accept it

		v2 := Files{"haproxy.cfg": []byte(routeConfig(port, "2")), "maps/exact.map": []byte("a.example a2\n")}
		if r, err := store.Apply(ctx, v2, validate); err != nil || !r.Changed {
			t.Fatalf("apply v2: %+v %v", r, err)
		}
		start := time.Now()
		res, err := cli.Reload(ctx)
		if err != nil {
			t.Fatalf("reload: %v\n%s", err, sup.OutputTail())
		}
		t.Logf("HAProxy %s reload took %v: %+v", hb.name, time.Since(start), res)
		if res.Worker == 0 || res.Worker == st.CurrentWorker() {
			t.Fatalf("reload did not produce a new worker: %+v (old %d)", res, st.CurrentWorker())
		}
		if hb.major >= 3 && !strings.Contains(res.Log, "Loading success") {
			t.Errorf("3.0 reload log: %q", res.Log)
		}
		body = get(t, port, "a.example")
		if field(body, "route") != "a2" || field(body, "gen") != "2" || field(body, "pid") != strconv.Itoa(res.Worker) {
			t.Fatalf("after reload: %q, want new worker %d", body, res.Worker)
		}
		if n, err := cli.OldWorkers(ctx); err != nil || n != 1 {
			t.Fatalf("old workers while a connection is held: %d %v", n, err)
		}
		// Finishing the held request lets the old worker exit.
		if _, err := io.WriteString(hold, "\r\n"); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 512)
		n, _ := hold.Read(b)
		if !strings.Contains(string(b[:n]), "gen=1") {
			t.Errorf("held request should be answered by the old config, got %q", b[:n])
		}
		hold.Close()
		eventually(t, "old worker exit", func() bool { n, err := cli.OldWorkers(ctx); return err == nil && n == 0 })

		// A reload that fails at startup although `haproxy -c` passes: the port
		// of a new bind is taken by a plain (non-SO_REUSEPORT) listener.
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		busyPort := busy.Addr().(*net.TCPAddr).Port
		v3 := Files{
			"haproxy.cfg":    []byte(routeConfig(port, "3") + fmt.Sprintf("    bind 127.0.0.1:%d\n", busyPort)),
			"maps/exact.map": []byte("a.example a3\n"),
		}
		if _, err := store.Apply(ctx, v3, validate); err != nil {
			t.Fatalf("v3 should pass haproxy -c: %v", err)
		}
		// Through the Supervisor so 2.6's failure log is picked up from stderr.
		_, err = sup.Reload(ctx)
		var re *ReloadError
		if !errors.As(err, &re) {
			t.Fatalf("reload onto a busy port: want *ReloadError, got %v", err)
		}
		t.Logf("HAProxy %s failed reload: %v", hb.name, err)
		if !strings.Contains(re.Log, "Address already in use") {
			t.Errorf("failed reload log: %q", re.Log)
		}
		if a := re.Diagnostics; len(a) == 0 || a[0].Location != (Location{"haproxy.cfg", 11}) {
			t.Errorf("failed reload diagnostics: %+v", a)
		}
		// The previous worker keeps serving the previous config.
		body = get(t, port, "a.example")
		if field(body, "gen") != "2" || field(body, "pid") != strconv.Itoa(res.Worker) {
			t.Fatalf("after failed reload: %q, want gen 2 from worker %d", body, res.Worker)
		}

		// And the next good reload recovers (the failed counter resets).
		busy.Close()
		v4 := Files{"haproxy.cfg": []byte(routeConfig(port, "4")), "maps/exact.map": []byte("a.example a4\n")}
		if _, err := store.Apply(ctx, v4, validate); err != nil {
			t.Fatal(err)
		}
		res4, err := cli.Reload(ctx)
		if err != nil {
			t.Fatalf("reload after failure: %v\n%s", err, sup.OutputTail())
		}
		if body = get(t, port, "a.example"); field(body, "gen") != "4" || field(body, "pid") != strconv.Itoa(res4.Worker) {
			t.Fatalf("after recovery: %q", body)
		}
		if sup.Starts() != 1 {
			t.Fatalf("reloads must not restart the master: %d starts", sup.Starts())
		}
	})
}

// TestRuntimeMaps: map updates through the master socket change routing without a
// reload (same worker PID).
func TestRuntimeMaps(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()
		const m = "maps/exact.map" // the name as the config wrote it (default-path config)

		before := get(t, port, "c.example")
		if field(before, "route") != "none" {
			t.Fatalf("before: %q", before)
		}
		pid := field(before, "pid")

		if err := cli.AddMapEntry(ctx, m, "c.example", "c1"); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "c.example"); field(got, "route") != "c1" || field(got, "pid") != pid {
			t.Fatalf("after add: %q (want c1 from worker %s)", got, pid)
		}
		if err := cli.SetMapEntry(ctx, m, "c.example", "c2"); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "c.example"); field(got, "route") != "c2" || field(got, "pid") != pid {
			t.Fatalf("after set: %q", got)
		}
		// Arguments with spaces, ';' and '\' survive the CLI's parser.
		if err := cli.AddMapEntry(ctx, m, `odd;key\x`, "two words"); err != nil {
			t.Fatal(err)
		}
		entries, err := cli.ShowMap(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			if !strings.HasPrefix(e.ID, "0x") {
				t.Errorf("entry id %q", e.ID)
			}
			got[e.Key] = e.Value
		}
		if len(got) != 3 || got["a.example"] != "a1" || got["c.example"] != "c2" || got[`odd;key\x`] != "two words" {
			t.Fatalf("show map: %+v", entries)
		}
		if err := cli.DelMapEntry(ctx, m, "c.example"); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "c.example"); field(got, "route") != "none" || field(got, "pid") != pid {
			t.Fatalf("after del: %q", got)
		}

		// Errors HAProxy reports as plain text are errors here.
		var rerr *RuntimeError
		for name, err := range map[string]error{
			"add to unknown map": cli.AddMapEntry(ctx, "maps/nope.map", "k", "v"),
			"set missing key":    cli.SetMapEntry(ctx, m, "missing.example", "v"),
			"del missing key":    cli.DelMapEntry(ctx, m, "missing.example"),
		} {
			if !errors.As(err, &rerr) {
				t.Errorf("%s: want *RuntimeError, got %v", name, err)
			}
		}
		if _, err := cli.ShowMap(ctx, "maps/nope.map"); !errors.As(err, &rerr) {
			t.Errorf("show unknown map: want *RuntimeError, got %v", err)
		}

		if err := cli.ClearMap(ctx, m); err != nil {
			t.Fatal(err)
		}
		if entries, err := cli.ShowMap(ctx, m); err != nil || len(entries) != 0 {
			t.Fatalf("after clear: %+v %v", entries, err)
		}
		if sup.Starts() != 1 {
			t.Fatalf("master restarted: %d starts", sup.Starts())
		}
		st, err := cli.ShowProc(ctx)
		if err != nil || st.Reloads != 0 {
			t.Fatalf("runtime updates must not reload: %+v %v", st, err)
		}
	})
}

// TestRuntimeServers: a pre-allocated "slot" server is pointed at a backend and
// enabled/disabled at runtime, and dynamic servers are added and removed.
func TestRuntimeServers(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		echo := func(name string) (*httptest.Server, int) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "backend=%s", name)
			}))
			t.Cleanup(srv.Close)
			return srv, srv.Listener.Addr().(*net.TCPAddr).Port
		}
		_, portA := echo("A")
		_, portB := echo("B")
		cfg := baseConfig + fmt.Sprintf(`frontend fe
    bind 127.0.0.1:%d
    default_backend be_app
backend be_app
    balance roundrobin
    server slot1 127.0.0.1:%d
    server slot2 127.0.0.1:1 disabled
`, port, portA)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg)})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()

		if got := get(t, port, "x"); got != "200 backend=A" {
			t.Fatalf("initial: %q", got)
		}
		servers, err := cli.ServersState(ctx, "be_app")
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 2 || servers[0].Name != "slot1" || servers[0].Port != portA || servers[0].AdminState != StateReady ||
			servers[1].Name != "slot2" || servers[1].AdminState != StateMaint || servers[1].ID != 2 {
			t.Fatalf("servers state: %+v", servers)
		}

		// Repoint the slot to B: same worker, new answer.
		if err := cli.SetServerAddr(ctx, "be_app", "slot1", "127.0.0.1", portB); err != nil {
			t.Fatal(err)
		}
		// Setting the same address again is not an error ("nothing changed").
		if err := cli.SetServerAddr(ctx, "be_app", "slot1", "127.0.0.1", portB); err != nil {
			t.Fatalf("idempotent set addr: %v", err)
		}
		if got := get(t, port, "x"); got != "200 backend=B" {
			t.Fatalf("after set addr: %q", got)
		}
		// Drain, then maintenance: no server left -> 503.
		if err := cli.SetServerState(ctx, "be_app", "slot1", StateDrain); err != nil {
			t.Fatal(err)
		}
		if s, _ := cli.ServersState(ctx, "be_app"); s[0].AdminState != StateDrain {
			t.Fatalf("drain: %+v", s[0])
		}
		if err := cli.SetServerState(ctx, "be_app", "slot1", StateMaint); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "x"); !strings.HasPrefix(got, "503 ") {
			t.Fatalf("all servers in maint: %q", got)
		}
		// Enable the second slot pointed at A.
		if err := cli.SetServerAddr(ctx, "be_app", "slot2", "127.0.0.1", portA); err != nil {
			t.Fatal(err)
		}
		if err := cli.SetServerState(ctx, "be_app", "slot2", StateReady); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "x"); got != "200 backend=A" {
			t.Fatalf("slot2 ready: %q", got)
		}

		// Dynamic server: added in maintenance, enabled, then removed.
		if err := cli.SetServerState(ctx, "be_app", "slot2", StateMaint); err != nil {
			t.Fatal(err)
		}
		if err := cli.AddServer(ctx, "be_app", "dyn1", fmt.Sprintf("127.0.0.1:%d", portB)); err != nil {
			t.Fatal(err)
		}
		if err := cli.SetServerState(ctx, "be_app", "dyn1", StateReady); err != nil {
			t.Fatal(err)
		}
		if got := get(t, port, "x"); got != "200 backend=B" {
			t.Fatalf("dynamic server: %q", got)
		}
		var rerr *RuntimeError
		if err := cli.AddServer(ctx, "be_app", "dyn1", "127.0.0.1:1"); !errors.As(err, &rerr) {
			t.Fatalf("duplicate add server: %v", err)
		}
		if err := cli.SetServerState(ctx, "be_app", "dyn1", StateMaint); err != nil {
			t.Fatal(err)
		}
		if err := cli.DelServer(ctx, "be_app", "dyn1"); err != nil {
			t.Fatal(err)
		}
		if s, _ := cli.ServersState(ctx, "be_app"); len(s) != 2 {
			t.Fatalf("after del server: %+v", s)
		}

		// Text errors are errors.
		for name, err := range map[string]error{
			"addr of unknown server":  cli.SetServerAddr(ctx, "be_app", "nope", "127.0.0.1", 0),
			"invalid addr":            cli.SetServerAddr(ctx, "be_app", "slot1", "bad!addr", 0),
			"state of unknown server": cli.SetServerState(ctx, "be_app", "nope", StateReady),
			"del unknown server":      cli.DelServer(ctx, "be_app", "nope"),
		} {
			if !errors.As(err, &rerr) {
				t.Errorf("%s: want *RuntimeError, got %v", name, err)
			}
		}
		if _, err := cli.ServersState(ctx, "nobackend"); !errors.As(err, &rerr) {
			t.Errorf("unknown backend: want *RuntimeError, got %v", err)
		}
		if err := cli.SetServerState(ctx, "be_app", "slot1", "bogus"); err == nil {
			t.Error("invalid state: want error")
		}
	})
}
