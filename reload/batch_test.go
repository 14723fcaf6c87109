package reload

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
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
