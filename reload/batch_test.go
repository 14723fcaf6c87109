package reload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A batch of hundreds of runtime commands (more than one CLI line) runs in
// order through a few connections; arguments with ';', spaces and '\'
// survive; an error answer anywhere in the batch is reported.
func TestSendBatch(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		cfg := routeConfig(port, "1") + "backend be\n    balance roundrobin\n    server s1 127.0.0.1:1 disabled\n"
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg), "maps/exact.map": []byte("a.example a1\n")})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()
		const m = "maps/exact.map"

		var b Batch
		for i := range 600 {
			b.AddMap(m, fmt.Sprintf("h%03d.example", i), fmt.Sprintf("v%d", i))
		}
		b.SetMap(m, "a.example", "a2")
		b.DelMap(m, "h000.example")
		b.AddMap(m, `odd;key\x`, "two words")
		b.SetServerAddr("be", "s1", "127.0.0.2", 8080)
		b.SetServerState("be", "s1", StateReady)
		if err := cli.Send(ctx, &b); err != nil {
			t.Fatal(err)
		}
		entries, err := cli.ShowMap(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			if _, dup := got[e.Key]; dup {
				t.Errorf("key %q twice", e.Key)
			}
			got[e.Key] = e.Value
		}
		if len(got) != 601 || got["a.example"] != "a2" || got["h599.example"] != "v599" || got[`odd;key\x`] != "two words" {
			t.Errorf("map after the batch: %d entries, a.example=%q, h599=%q, odd=%q", len(got), got["a.example"], got["h599.example"], got[`odd;key\x`])
		}
		if _, ok := got["h000.example"]; ok {
			t.Error("h000.example was deleted later in the batch")
		}
		servers, err := cli.ServersState(ctx, "be")
		// (srv_admin_state keeps the "disabled in the configuration" flag
		// after "state ready"; TestRuntimeServers shows such a slot serving.)
		if err != nil || len(servers) != 1 || servers[0].Addr != "127.0.0.2" || servers[0].Port != 8080 {
			t.Errorf("server after the batch: %+v %v", servers, err)
		}

		var bad Batch
		bad.DelMap(m, "no-such.example")
		bad.AddMap(m, "after.example", "x")
		var re *RuntimeError
		if err := cli.Send(ctx, &bad); !errors.As(err, &re) || re.Answer != "Key not found." {
			t.Errorf("a batch with a failing command: %v", err)
		}
	})
}

// Certificates through a batch, as the controller sends them: a new one
// (new, set, commit ssl cert and its crt-list line), a rotation (set and
// commit) and a removal (its line, then the certificate), each served at
// once by a real handshake; history's form of a certificate's payload
// holds no key; a refused command is an error.
func TestSendBatchCertificates(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		cfg := baseConfig + fmt.Sprintf("frontend fe\n    bind 127.0.0.1:%d ssl crt certs/default.pem crt-list crt-list.txt\n"+
			"    http-request return status 200 content-type text/plain string ok\n", port)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg), "certs/default.pem": selfSignedPEM(t, "default.example"),
			"certs/a.pem": selfSignedPEM(t, "a.example"), "crt-list.txt": []byte("# a\ncerts/a.pem a.example\n")})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()
		served := func(sni string) string {
			t.Helper()
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("handshake for %s: %v", sni, err)
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		}
		if got := served("b.example"); got != "default.example" {
			t.Fatalf("b.example before: %s", got)
		}

		var add Batch
		add.NewSSLCert("certs/b.pem")
		add.SetSSLCert("certs/b.pem", selfSignedPEM(t, "b.example"))
		add.CommitSSLCert("certs/b.pem")
		add.AddCrtList("crt-list.txt", "certs/b.pem", []string{"b.example", "*.b.example"})
		add.SetMap("no-such.map", "k", "v") // the batch goes on after payloads: this fails
		var re *RuntimeError
		if err := cli.Send(ctx, &add); !errors.As(err, &re) {
			t.Fatalf("a batch ending with a failing command: %v", err)
		}
		if got, got2 := served("b.example"), served("x.b.example"); got != "b.example" || got2 != "b.example" {
			t.Errorf("a new certificate: b.example gets %s, x.b.example %s", got, got2)
		}
		cmds := add.Commands()
		if !strings.HasPrefix(cmds[1], "set ssl cert certs/b.pem << [certificate and key: ") || strings.Contains(strings.Join(cmds, "\n"), "PRIVATE") ||
			cmds[3] != "add ssl crt-list crt-list.txt << certs/b.pem b.example *.b.example" {
			t.Errorf("commands as history shows them:\n%s", strings.Join(cmds, "\n"))
		}

		var rotate Batch
		rotate.SetSSLCert("certs/a.pem", selfSignedPEM(t, "a2.example"))
		rotate.CommitSSLCert("certs/a.pem")
		rotate.DelCrtList("crt-list.txt", "certs/b.pem")
		rotate.DelSSLCert("certs/b.pem")
		if err := cli.Send(ctx, &rotate); err != nil {
			t.Fatal(err)
		}
		if got, got2 := served("a.example"), served("b.example"); got != "a2.example" || got2 != "default.example" {
			t.Errorf("after a rotation and a removal: a.example gets %s, b.example %s", got, got2)
		}

		var bad Batch
		bad.DelSSLCert("certs/none.pem")
		if err := cli.Send(ctx, &bad); !errors.As(err, &re) || !strings.Contains(re.Answer, "doesn't exist") {
			t.Errorf("deleting a certificate HAProxy does not have: %v", err)
		}
		var refused Batch
		refused.AddCrtList("crt-list.txt", "certs/x y.pem", nil)
		refused.SetSSLCert("certs/c.pem", []byte("a\n\nb"))
		if refused.Err() == nil {
			t.Error("a crt-list line with a space and a payload with an empty line were taken")
		}
	})
}

// Send keeps its master-CLI connection between batches (prompt mode) and,
// after a reload closed it, sends the next batch on a new one to the new
// worker: commands answering nothing and commands answering a sentence
// are both counted by their prompts, and an error answer is still
// reported.
func TestSendKeepsSession(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		port := freePort(t)
		cfg := routeConfig(port, "1") + "backend be\n    balance roundrobin\n    server s1 127.0.0.1:1 disabled\n    server s2 127.0.0.1:2\n"
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg), "maps/exact.map": []byte("a.example a1\n")})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), filepath.Join(tmp, "m.sock"))
		cli := sup.CLI()
		t.Cleanup(func() { cli.Close() })
		kept := func() net.Conn {
			cli.sessions.mu.Lock()
			defer cli.sessions.mu.Unlock()
			if cli.sessions.cur == nil {
				return nil
			}
			return cli.sessions.cur.conn
		}
		send := func(port1, port2 int) {
			t.Helper()
			var b Batch
			b.SetServerAddr("be", "s1", "127.0.0.2", port1)
			b.SetServerState("be", "s1", StateReady)
			b.SetServerAddr("be", "s2", "127.0.0.3", port2)
			b.SetMap("maps/exact.map", "a.example", fmt.Sprintf("a%d", port1))
			if err := cli.Send(ctx, &b); err != nil {
				t.Fatal(err)
			}
			servers, err := cli.ServersState(ctx, "be")
			if err != nil || len(servers) != 2 || servers[0].Port != port1 || servers[1].Port != port2 {
				t.Fatalf("servers after the batch: %+v %v", servers, err)
			}
		}
		send(8081, 9091)
		first := kept()
		if first == nil {
			t.Fatal("no connection kept after a batch")
		}
		send(8082, 9092)
		if kept() != first {
			t.Error("the second batch did not use the kept connection")
		}
		if _, err := sup.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		// The new worker runs the file's addresses; the session the
		// reload closed is replaced.
		send(8083, 9093)
		if c := kept(); c == nil || c == first {
			t.Errorf("after a reload: kept connection %v, the one before %v", c, first)
		}
		// A reload HAProxy refuses: the master's prompt says so
		// ("master[ReloadFailed]> "), and batches go on.
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg + "    no-such-keyword\n")})
		if _, err := sup.Reload(ctx); err == nil {
			t.Fatal("a reload onto a bad configuration succeeded")
		}
		send(8086, 9096)
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg)})
		var bad Batch
		bad.DelMap("maps/exact.map", "no-such.example")
		var re *RuntimeError
		if err := cli.Send(ctx, &bad); !errors.As(err, &re) || re.Answer != "Key not found." {
			t.Errorf("a failing command on the kept connection: %v", err)
		}
		send(8084, 9094)
		// A command for a worker the master does not have: 3.0 drops
		// the rest of the line, 2.6 closes the connection; either way
		// an error at once, not a wait for prompts that never come.
		start := time.Now()
		if _, err := cli.sessionRoundTrip(ctx, "@9 show version; @1 show version", 2); err == nil || !strings.Contains(err.Error(), noTarget) {
			t.Errorf("a command for no worker: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a command for no worker failed after %s", d)
		}
		send(8085, 9095)
	})
}

// With a worker socket, a batch goes to the worker itself (no master
// session is opened), after a reload to the new worker (a connection per
// batch follows the path to whoever bound it last), and an error answer
// is still reported; a worker socket nobody listens on leaves the master.
func TestSendThroughWorkerSocket(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		tmp := shortTempDir(t)
		httpPort := freePort(t)
		master := filepath.Join(tmp, "m.sock")
		worker := WorkerSocketFor(master)
		if worker != filepath.Join(tmp, "m-worker.sock") {
			t.Fatalf("WorkerSocketFor(%s) = %q", master, worker)
		}
		cfg := strings.Replace(routeConfig(httpPort, "1"), "global\n", "global\n    stats socket "+worker+" mode 600 level admin\n", 1) +
			"backend be\n    balance roundrobin\n    server s1 127.0.0.1:1 disabled\n"
		writeFiles(t, tmp, Files{"haproxy.cfg": []byte(cfg), "maps/exact.map": []byte("a.example a1\n")})
		sup := startSupervised(t, hb.path, filepath.Join(tmp, ConfigName), master)
		cli := sup.CLI()
		cli.WorkerSocket = worker
		t.Cleanup(func() { cli.Close() })
		send := func(cli *MasterCLI, port int) {
			t.Helper()
			var b Batch
			b.SetServerAddr("be", "s1", "127.0.0.2", port)
			b.SetServerState("be", "s1", StateReady)
			b.SetMap("maps/exact.map", "a.example", fmt.Sprintf("a%d", port))
			if err := cli.Send(ctx, &b); err != nil {
				t.Fatal(err)
			}
			servers, err := cli.ServersState(ctx, "be")
			if err != nil || len(servers) != 1 || servers[0].Port != port {
				t.Fatalf("servers after the batch: %+v %v", servers, err)
			}
			if body := get(t, httpPort, "a.example"); field(body, "route") != fmt.Sprintf("a%d", port) {
				t.Fatalf("after the batch the worker serving answers %q", body)
			}
		}
		masterSession := func() bool {
			cli.sessions.mu.Lock()
			defer cli.sessions.mu.Unlock()
			return cli.sessions.cur != nil
		}
		send(cli, 8081)
		if masterSession() {
			t.Error("a batch went through the master although the worker has a socket")
		}
		if _, err := sup.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		// The new worker runs the file's map: the batch must reach it.
		send(cli, 8082)
		var bad Batch
		bad.DelMap("maps/exact.map", "no-such.example")
		var re *RuntimeError
		if err := cli.Send(ctx, &bad); !errors.As(err, &re) || re.Answer != "Key not found." {
			t.Errorf("a failing command through the worker socket: %v", err)
		}
		if masterSession() {
			t.Error("a batch went through the master although the worker has a socket")
		}

		// A socket nobody listens on: the master carries the batch.
		other := sup.CLI()
		other.WorkerSocket = filepath.Join(tmp, "nobody.sock")
		t.Cleanup(func() { other.Close() })
		send(other, 8083)
		other.sessions.mu.Lock()
		viaMaster := other.sessions.cur != nil
		other.sessions.mu.Unlock()
		if !viaMaster {
			t.Error("with no worker listening, the batch did not go through the master")
		}
	})
}

// WorkerSocketFor names the worker socket after the master's, beside it,
// and gives none where HAProxy could not bind it.
func TestWorkerSocketFor(t *testing.T) {
	for master, want := range map[string]string{
		"/run/haproxy/master.sock": "/run/haproxy/master-worker.sock",
		"/run/haproxy/m":           "/run/haproxy/m-worker.sock",
		"":                         "",
		"/run/a\nb/master.sock":    "",
		"/run/n=1 it's/m.sock":     "/run/n=1 it's/m-worker.sock",
		"/" + strings.Repeat("d", 75) + "/master.sock": "/" + strings.Repeat("d", 75) + "/master-worker.sock",
		"/" + strings.Repeat("d", 76) + "/master.sock": "",
	} {
		if got := WorkerSocketFor(master); got != want {
			t.Errorf("WorkerSocketFor(%q) = %q, want %q", master, got, want)
		}
	}
}
