package reload

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, hb := range haproxyBins(t) {
		v, err := Version(context.Background(), hb.path)
		if err != nil {
			t.Fatal(err)
		}
		if v.Major != hb.major || v.Minor != hb.minor {
			t.Errorf("%s: got %d.%d (%q), want %s", hb.path, v.Major, v.Minor, v.Full, hb.name)
		}
		if !v.AtLeast(2, 6) || v.AtLeast(3, 1) {
			t.Errorf("%s: AtLeast wrong for %v", hb.path, v)
		}
	}
	v, err := parseVersion(versionLineRe, "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\nStatus: ...")
	if err != nil || v.Major != 2 || v.Minor != 6 || v.Patch != 12 || v.Full != "2.6.12-1+deb12u4" {
		t.Errorf("parse 2.6: %+v %v", v, err)
	}
	if _, err := parseVersion(versionLineRe, "nginx version: 1.2"); err == nil {
		t.Error("want error for non-HAProxy output")
	}
}

// Output captured from HAProxy 2.6.12 and 3.0.11 on this machine.
func TestParseDiagnostics(t *testing.T) {
	out := `[NOTICE]   (4771) : haproxy version is 2.6.12-1+deb12u4
[ALERT]    (4771) : config : parsing [/cfg/gen-3/haproxy.cfg:3] : parsing [/cfg/gen-3/haproxy.cfg:3] : 'stats socket' : invalid port '0'
[ALERT]    (20492) : config : parsing [/cfg/gen-3/haproxy.cfg:9] : 'bind 127.0.0.1:44443' in section 'frontend' : unable to load certificate from file 'certs/bad.pem': no start line.
[ALERT]    (20512) : config : parsing [/cfg/gen-3/haproxy.cfg:9] : 'bind 127.0.0.1:44443' in section 'frontend' : 'crt-list' : parsing [crt-list.txt:2]: unknown ssl keyword bogusopt
[ALERT]    (20516) : config : parsing [/cfg/gen-3/haproxy.cfg:10] : error detected in frontend 'fe' while parsing 'http-request set-var(txn.x)' rule : invalid args in converter 'map_str' : failed to open pattern file <maps/missing.map>.
[ALERT]    (1) : config : unable to load SSL certificate from PEM file '/cfg/gen-3/certs/a.pem'.
[ALERT]    (6656) : config : [/usr/sbin/haproxy.main()] Some protocols failed to start their listeners! Exiting.
[ALERT]    (6656) : Binding [/cfg/gen-3/haproxy.cfg:11] for frontend fe: protocol tcpv4: cannot bind socket (Address already in use) for [127.0.0.1:39831].
[WARNING]  (1) : config : missing timeouts for frontend 'fe'.
[ALERT]    (20523) : config : Error(s) found in configuration file : /cfg/gen-3/haproxy.cfg
[ALERT]    (20523) : config : Fatal errors found in configuration.
`
	got := ParseDiagnostics(out, "/cfg/gen-3")
	want := []struct {
		sev, file string
		line      int
		msgPrefix string
		all       []Location
	}{
		{"ALERT", "haproxy.cfg", 3, "'stats socket' : invalid port '0'", []Location{{"haproxy.cfg", 3}}},
		{"ALERT", "certs/bad.pem", 0, "'bind 127.0.0.1:44443' in section 'frontend' : unable to load",
			[]Location{{"haproxy.cfg", 9}, {"certs/bad.pem", 0}}},
		{"ALERT", "crt-list.txt", 2, "'bind 127.0.0.1:44443'", []Location{{"haproxy.cfg", 9}, {"crt-list.txt", 2}}},
		{"ALERT", "maps/missing.map", 0, "error detected in frontend 'fe'", []Location{{"haproxy.cfg", 10}, {"maps/missing.map", 0}}},
		{"ALERT", "certs/a.pem", 0, "unable to load SSL certificate", []Location{{"certs/a.pem", 0}}},
		{"ALERT", "", 0, "[/usr/sbin/haproxy.main()] Some protocols", nil},
		{"ALERT", "haproxy.cfg", 11, "Binding [/cfg/gen-3/haproxy.cfg:11] for frontend fe", []Location{{"haproxy.cfg", 11}}},
		{"WARNING", "", 0, "missing timeouts for frontend 'fe'.", nil},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Severity != w.sev || g.File != w.file || g.Line != w.line || !strings.HasPrefix(g.Message, w.msgPrefix) || !slices.Equal(g.All, w.all) {
			t.Errorf("diagnostic %d:\n got  %+v\n want %+v", i, g, w)
		}
	}
}

func TestCheck(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		good := selfSignedPEM(t, "a.example")
		port := freePort(t)
		fe := fmt.Sprintf("frontend fe\n    bind 127.0.0.1:%d\n", port)
		tls := fmt.Sprintf("frontend fe\n    bind 127.0.0.1:%d ssl ", port)
		cases := []struct {
			name  string
			files Files
			// want: nil for valid; else the primary location of the first alert
			want *Location
		}{
			{"valid", Files{
				"haproxy.cfg":    []byte(baseConfig + tls + "crt-list crt-list.txt\n    http-request set-var(txn.r) req.hdr(host),map_str(maps/exact.map)\n"),
				"crt-list.txt":   []byte("certs/a.pem\n"),
				"certs/a.pem":    good,
				"maps/exact.map": []byte("a.example a1\n"),
			}, nil},
			// Exit status 2 ("no error but will not start"): HAProxy would
			// serve nothing, so it is refused.
			{"no listener", Files{"haproxy.cfg": []byte(baseConfig)}, &Location{"haproxy.cfg", 0}},
			{"unknown keyword", Files{
				"haproxy.cfg": []byte(baseConfig + fe + "    bogus_keyword here\n"),
			}, &Location{"haproxy.cfg", 10}},
			{"bad certificate", Files{
				"haproxy.cfg": []byte(baseConfig + tls + "crt certs/bad.pem\n"),
				"certs/bad.pem": []byte("-----BEGIN CERTIFICATE-----\nnot base64\n" +
					"-----END CERTIFICATE-----\n"),
			}, &Location{"certs/bad.pem", 0}},
			{"missing certificate", Files{
				"haproxy.cfg": []byte(baseConfig + tls + "crt certs/missing.pem\n"),
			}, &Location{"certs/missing.pem", 0}},
			{"bad crt-list line", Files{
				"haproxy.cfg":  []byte(baseConfig + tls + "crt-list crt-list.txt\n"),
				"crt-list.txt": []byte("certs/a.pem\ncerts/a.pem [alpn h2 bogusopt]\n"),
				"certs/a.pem":  good,
			}, &Location{"crt-list.txt", 2}},
			{"missing map", Files{
				"haproxy.cfg": []byte(baseConfig + fe + "    http-request set-var(txn.r) req.hdr(host),map_str(maps/missing.map)\n"),
			}, &Location{"maps/missing.map", 0}},
		}
		for _, c := range cases {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			cfg := filepath.Join(dir, ConfigName)
			err := Check(ctx, hb.path, cfg)
			if c.want == nil {
				if err != nil {
					t.Errorf("%s: want valid, got %v", c.name, err)
				}
				continue
			}
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Errorf("%s: want *CheckError, got %v", c.name, err)
				continue
			}
			alerts := ce.Alerts()
			if len(alerts) == 0 {
				t.Errorf("%s: no alerts parsed from:\n%s", c.name, ce.Output)
				continue
			}
			if alerts[0].Location != *c.want {
				t.Errorf("%s: first alert at %+v, want %+v\n%s", c.name, alerts[0].Location, *c.want, ce.Output)
			}
			// Every location that names a file in the config dir is relative.
			for _, l := range alerts[0].All {
				if filepath.IsAbs(l.File) {
					t.Errorf("%s: absolute location %q", c.name, l.File)
				}
			}
			if !strings.Contains(ce.Error(), c.want.File) {
				t.Errorf("%s: Error() %q does not name %s", c.name, ce.Error(), c.want.File)
			}
		}
		// The config line that loads the bad certificate is reported too, so the
		// caller can blame both the Secret and the Ingress using it.
		dir := t.TempDir()
		writeFiles(t, dir, Files{"haproxy.cfg": []byte(baseConfig + tls + "crt certs/missing.pem\n")})
		var ce *CheckError
		if err := Check(ctx, hb.path, filepath.Join(dir, ConfigName)); !errors.As(err, &ce) {
			t.Fatalf("want *CheckError, got %v", err)
		}
		if !slices.Contains(ce.Alerts()[0].All, Location{"haproxy.cfg", 9}) {
			t.Errorf("missing haproxy.cfg:9 in %+v", ce.Alerts()[0].All)
		}

		// A binary that cannot run is not a config error.
		err := Check(ctx, "/nonexistent/haproxy", filepath.Join(dir, ConfigName))
		if err == nil || errors.As(err, &ce) {
			t.Errorf("want plain error for missing binary, got %v", err)
		}
	})
}

// Check changes HAProxy's working directory to the config's; a relative path
// must still name the same file.
func TestCheckRelativePath(t *testing.T) {
	hb := haproxyBins(t)[0]
	dir := t.TempDir()
	writeFiles(t, dir, Files{"sub/haproxy.cfg": []byte(baseConfig + "frontend fe\n    bogus_keyword\n")})
	t.Chdir(dir)
	var ce *CheckError
	if err := Check(context.Background(), hb.path, "sub/haproxy.cfg"); !errors.As(err, &ce) {
		t.Fatalf("want *CheckError, got %v", err)
	}
	if a := ce.Alerts(); len(a) == 0 || a[0].Location != (Location{"haproxy.cfg", 9}) {
		t.Fatalf("diagnostics: %+v\n%s", ce.Diagnostics, ce.Output)
	}
}
