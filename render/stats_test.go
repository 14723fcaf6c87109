package render_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// The stats frontend (--stats-bind): rendered only when asked for, with the
// Prometheus exporter only when HAProxy has it, accepted by HAProxy 2.6 and
// 3.0 either way, and never on a port the ingress frontend uses.
func TestStatsFrontend(t *testing.T) {
	in := render.Inputs{}
	for _, tc := range []struct {
		name       string
		cfg        haproxycfg.Config
		want, deny []string
	}{
		{name: "none", cfg: haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443"},
			deny: []string{"frontend stats", "prometheus-exporter", "monitor-uri"}},
		{name: "exporter", cfg: haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", StatsBind: "127.0.0.1:8404", PrometheusExporter: true},
			want: []string{"frontend stats\n    bind 127.0.0.1:8404\n", "monitor-uri /healthz\n", "http-request use-service prometheus-exporter if { path /metrics }\n"}},
		{name: "no-exporter", cfg: haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", StatsBind: ":8404"},
			want: []string{"frontend stats\n    bind :8404\n", "monitor-uri /healthz\n"},
			deny: []string{"use-service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, out, _ := renderInputs(t, in, tc.cfg, nil)
			cfg := string(out.Get(haproxycfg.ConfigFile))
			for _, w := range tc.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("configuration lacks %q:\n%s", w, cfg)
				}
			}
			for _, d := range tc.deny {
				if strings.Contains(cfg, d) {
					t.Errorf("configuration has %q:\n%s", d, cfg)
				}
			}
			checkStructureConfig(t, []byte(cfg), m, tc.cfg)
			dir := t.TempDir()
			writeFiles(t, dir, out)
			for version, bin := range testenv.HAProxies(t) {
				if err := reload.Check(context.Background(), bin, filepath.Join(dir, haproxycfg.ConfigFile)); err != nil {
					t.Errorf("haproxy %s -c: %v", version, err)
				}
			}
		})
	}

	for _, bad := range []struct{ stats, http, https, want string }{
		{":80", ":80", ":443", "same port"},
		{"127.0.0.1:443", ":80", ":443", "same port"},
		{"0.0.0.0:8080", "127.0.0.1:8080", ":8443", "same port"},
		{"stats:8404", ":80", ":443", "stats bind"},
		{":0", ":80", ":443", "stats bind"},
	} {
		m := render.BuildModel(in, render.Options{})
		_, err := haproxycfg.Render(m, haproxycfg.Config{HTTPBind: bad.http, HTTPSBind: bad.https, StatsBind: bad.stats, PrometheusExporter: true})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("stats bind %q with %q/%q: error %v, want one containing %q", bad.stats, bad.http, bad.https, err, bad.want)
		}
	}
}
