package sidecartest

import (
	"strings"
	"testing"
)

// The sidecar's output is kept line by line, whatever the pipe's chunks,
// without HAProxy's access log lines, which are counted.
func TestOutputDropsAccessLogLines(t *testing.T) {
	s := &Sidecar{Logs: &LockedBuffer{}}
	w := s.output()
	lines := `{"level":"info","msg":"starting"}
{"level":"info","logger":"haproxy.output","msg":"127.0.0.1:4000 [30/Nov/2026:07:00:00.000] ingress default_web_80/s1 0/0/0/0/0 200 120 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\""}
{"level":"info","msg":"reloaded HAProxy"}
`
	for _, part := range []string{lines[:10], lines[10:70], lines[70:]} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	kept := s.Logs.String()
	if s.AccessLogLines() != 1 || strings.Count(kept, "\n") != 2 || strings.Contains(kept, "GET /") {
		t.Errorf("dropped %d, kept:\n%s", s.AccessLogLines(), kept)
	}
	if !strings.Contains(kept, `"msg":"starting"}`+"\n") || !strings.HasSuffix(kept, `"msg":"reloaded HAProxy"}`+"\n") {
		t.Errorf("the other lines are not kept whole:\n%s", kept)
	}
}

// Options become the command line in one place: the tests' defaults, or
// only what must be told with BinaryDefaults; Init passes only what --init
// reads.
func TestOptionsArgs(t *testing.T) {
	o := Options{Binary: "/bin/true", HAProxy: "/usr/sbin/haproxy", Templates: "/t", TCPServicesConfigMap: "ns/tcp", Threads: 3, Args: []string{"--x", "y"}}.resolve(t)
	got := strings.Join(o.args(), " ")
	for _, want := range []string{"run --manifests " + o.Manifests, "--config-dir " + o.ConfigDir, "--master-socket " + o.Socket,
		"--haproxy-start", "--haproxy /usr/sbin/haproxy", "--log-level debug", "--grace-period 5s", "--min-reload-interval 0s",
		"--spare-backends 0", "--templates /t", "--tcp-services-configmap ns/tcp", "--haproxy-threads 3", "--x y"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	bench := Options{Binary: "/bin/true", Kubeconfig: "/k", BinaryDefaults: true}.resolve(t)
	got = strings.Join(bench.args(), " ")
	for _, unwanted := range []string{"--manifests", "--log-level", "--grace-period", "--min-reload-interval", "--spare-backends", "--templates", "--tcp-services-configmap", "--haproxy ", "--haproxy-threads"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("BinaryDefaults: args %q hold %q", got, unwanted)
		}
	}
	ext := Options{Binary: "/bin/true", External: true, DebugPort: -1, GracePeriod: -1, MinReloadInterval: -1, SpareBackends: -1}.resolve(t)
	got = strings.Join(ext.args(), " ")
	if strings.Contains(got, "--haproxy-start") || !strings.Contains(got, `--debug-addr  --`) || strings.Contains(got, "--grace-period") ||
		strings.Contains(got, "--min-reload-interval") || strings.Contains(got, "--spare-backends") {
		t.Errorf("external: args %q", got)
	}
	init := Options{Binary: "/bin/true", Init: true, GracePeriod: -1}.resolve(t)
	if got, want := strings.Join(init.args(), " "), "run --init --config-dir "+init.ConfigDir+" --http-bind 127.0.0.1:"; !strings.HasPrefix(got, want) ||
		strings.Contains(got, "--manifests") || strings.Contains(got, "--master-socket") || strings.Contains(got, "--log-level") {
		t.Errorf("init: args %q", got)
	}
}
