package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// throughputSettings: requests/s to one host of a big configuration
// against a single-host one (BENCH_ONLY=throughput).
type throughputSettings struct {
	hosts    int           // BENCH_TP_HOSTS: Ingresses (hosts) of the big configuration, default 20000
	duration time.Duration // BENCH_TP_DURATION: one run, default 10s
	repeat   int           // BENCH_TP_REPEAT: runs of each; the median is reported; default 3
	conns    int           // BENCH_TP_CONNS: concurrent keep-alive connections, default 8
	// BENCH_TP_SLICE: a run is made of slices of this length, the
	// configurations taking turns slice by slice (the first in turn
	// rotating), so that a machine shared with other work slows them
	// alike; default 1s.
	slice time.Duration
}

func loadThroughputSettings(b *testing.B) throughputSettings {
	return throughputSettings{
		hosts:    atoiOr(b, "BENCH_TP_HOSTS", 20000),
		duration: durationOr(b, "BENCH_TP_DURATION", 10*time.Second),
		repeat:   atoiOr(b, "BENCH_TP_REPEAT", 3),
		conns:    atoiOr(b, "BENCH_TP_CONNS", 8),
		slice:    durationOr(b, "BENCH_TP_SLICE", time.Second),
	}
}

// haproxyProc is an HAProxy started by the suite on a rendered directory.
type haproxyProc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

// startHAProxy runs `bin -W -db -f dir/haproxy.cfg` (master-worker in the
// foreground, as the sidecar runs it, without the master socket) until
// the benchmark ends. Its standard output (the access log) goes to
// /dev/null; standard error is kept for a failure.
func startHAProxy(b *testing.B, bin, dir string) *haproxyProc {
	p := &haproxyProc{cmd: exec.Command(bin, "-W", "-db", "-f", filepath.Join(dir, "haproxy.cfg")), done: make(chan struct{})}
	p.cmd.Stderr = &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if b.Failed() {
			b.Logf("%s on %s, standard error:\n%s", bin, dir, tail(p.out.String(), 4000))
		}
	})
	return p
}

// renderDir runs `haproxy-sidecar render` of manifests into dir with the
// listeners on the given loopback ports, validated by the run's HAProxy
// (--no-validate when validate is false), and returns how long it took.
func (r *run) renderDir(manifests, dir string, httpPort, httpsPort int, validate bool) time.Duration {
	r.b.Helper()
	args := []string{"render", "--manifests", manifests, "--out", dir,
		"--http-bind", "127.0.0.1:" + strconv.Itoa(httpPort), "--https-bind", "127.0.0.1:" + strconv.Itoa(httpsPort)}
	if validate {
		args = append(args, "--haproxy", r.haproxy)
	} else {
		args = append(args, "--no-validate")
	}
	cmd := exec.Command(r.binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		r.b.Fatalf("haproxy-sidecar %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	took := time.Since(start)
	r.b.Logf("rendered %s in %s: %s", filepath.Base(manifests), took.Round(time.Millisecond), strings.TrimSpace(tail(out.String(), 500)))
	return took
}

// throughput: the sidecar's configuration for N Ingresses (each its own
// host) against the one for a single Ingress, both rendered by
// `haproxy-sidecar render` and run by HAProxy inside the namespace, the
// same client and backends: requests/s to the host that sorts last (the
// single configuration's only host) and to a random host of the same
// shape.
func (r *run) throughput() {
	b := r.b
	set := r.set.tput
	for i := range GroupSize {
		kube.StartEcho(b, "a"+strconv.Itoa(i), kube.BackendIP(i)+":"+strconv.Itoa(EchoPort))
	}
	dir := b.TempDir()
	last := r.spec.Ingresses - 1 // Host(last) sorts last: names are zero-padded
	// A random Ingress of the last one's shape: odd (paths / and /api), so
	// its Service has 3 endpoints on the same echo process, as the last's.
	if r.spec.Ingresses < 4 {
		b.Fatalf("BENCH_TP_HOSTS: %d; at least 4", r.spec.Ingresses)
	}
	random := rand.IntN(r.spec.Ingresses/2)*2 + 1
	if random >= last {
		random -= 2
	}
	bigManifest, singleManifest := filepath.Join(dir, "big.yaml"), filepath.Join(dir, "single.yaml")
	if err := WriteManifestFile(bigManifest, r.spec, nil); err != nil {
		b.Fatal(err)
	}
	if err := WriteManifestFile(singleManifest, r.spec, []int{last}); err != nil {
		b.Fatal(err)
	}
	ports := sidecartest.FreePorts(b, 4)
	bigDir, singleDir := filepath.Join(dir, "big"), filepath.Join(dir, "single")
	renderBig := r.renderDir(bigManifest, bigDir, ports[0], ports[1], true)
	r.renderDir(singleManifest, singleDir, ports[2], ports[3], true)
	size, err := ConfigSize(bigDir)
	if err != nil {
		b.Fatal(err)
	}
	startHAProxy(b, r.haproxy, bigDir)
	startHAProxy(b, r.haproxy, singleDir)

	target := TargetOf(r.spec, last)
	want := func(bodies map[string]bool) func(int, []byte) bool {
		return func(status int, body []byte) bool { return status == 200 && bodies[string(body)] }
	}
	type measured struct {
		name  string
		port  int
		host  string
		want  func(int, []byte) bool
		rates []float64
		fails int64
		first string
	}
	cases := []*measured{
		{name: "single", port: ports[2], host: Host(last), want: want(target.Bodies)},
		{name: "last", port: ports[0], host: Host(last), want: want(target.Bodies)},
		{name: "random", port: ports[0], host: Host(random), want: want(TargetOf(r.spec, random).Bodies)},
	}
	for _, c := range cases {
		f := Front{HTTPPort: c.port}
		if _, err := f.Poll(time.Now(), time.Minute, c.host, "/", false, Served); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		// Warm-up: connections, backend connections, caches.
		Throughput(c.port, c.host, "/", set.conns, time.Second, c.want)
	}
	slice := min(set.slice, set.duration)
	slices := max(1, int(set.duration/slice))
	for k := range set.repeat {
		ok := make([]int64, len(cases))
		took := make([]time.Duration, len(cases))
		for sl := range slices {
			for t := range cases {
				i := (sl + t) % len(cases)
				c := cases[i]
				res := Throughput(c.port, c.host, "/", set.conns, slice, c.want)
				ok[i] += res.OK
				took[i] += res.Duration
				c.fails += res.Failed
				if c.first == "" {
					c.first = res.FirstError
				}
			}
		}
		for i, c := range cases {
			rate := float64(ok[i]) / took[i].Seconds()
			c.rates = append(c.rates, rate)
			b.Logf("run %d %s (%s): %.0f requests/s", k+1, c.name, c.host, rate)
		}
	}
	median := func(c *measured) float64 {
		s := append([]float64(nil), c.rates...)
		sort.Float64s(s)
		return s[(len(s)-1)/2]
	}
	single := median(cases[0])
	cmd := benchCmd("BENCH_ONLY=throughput", "BENCH_HAPROXY="+r.version, "BENCH_TP_HOSTS="+strconv.Itoa(set.hosts),
		"BENCH_TP_DURATION="+set.duration.String(), "BENCH_TP_REPEAT="+strconv.Itoa(set.repeat), "BENCH_TP_CONNS="+strconv.Itoa(set.conns), "BENCH_TP_SLICE="+slice.String())
	setup := fmt.Sprintf("GET / over %d keep-alive connections back to back (one Go client) to HAProxy on 127.0.0.1 (`haproxy -W -db -f` on the `haproxy-sidecar render` output, access log to /dev/null), backends: in-process Go echo servers on the namespace's addresses; median of %d runs of %s each, made of %d slices of %s in which the 3 measurements (single, last, random) take turns",
		set.conns, set.repeat, slice*time.Duration(slices), slices, slice)
	rates := func(c *measured) string {
		var s []string
		for _, v := range c.rates {
			s = append(s, strconv.FormatFloat(v, 'f', 0, 64))
		}
		return "runs " + strings.Join(s, ", ") + " req/s"
	}
	failures := func(c *measured) string {
		if c.fails == 0 {
			return "0 failed"
		}
		b.Errorf("throughput %s: %d requests failed, first: %s", c.name, c.fails, c.first)
		return fmt.Sprintf("**%d failed** (first: %s)", c.fails, c.first)
	}
	rps := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " req/s" }
	r.rows = append(r.rows, Row{Figure: "throughput: single-host configuration (1 Ingress)", N: "1", HAProxy: r.version, Variant: r.variant,
		Samples: set.repeat, P50: rps(single),
		Notes: fmt.Sprintf("requests/s (median) in p50; host %s, the same Ingress, Service and endpoints as the last host below; %s; %s; %s; %s", Host(last), rates(cases[0]), failures(cases[0]), setup, cmd)})
	for _, c := range cases[1:] {
		which := "the host that sorts last"
		if c.name == "random" {
			which = fmt.Sprintf("a random host (odd Ingress: paths / and /api as the last; its Service has %d endpoints, the last's %d, all on the same echo process)",
				2+r.spec.ServiceOf(random)%2, 2+r.spec.ServiceOf(last)%2)
		}
		ratio := median(c) / single
		var paired []string
		for k := range c.rates {
			paired = append(paired, strconv.FormatFloat(c.rates[k]/cases[0].rates[k], 'f', 2, 64))
		}
		r.rows = append(r.rows, Row{Figure: fmt.Sprintf("throughput: %s of %d → ratio to single host", c.name, r.spec.Ingresses), N: strconv.Itoa(r.spec.Ingresses), HAProxy: r.version, Variant: r.variant,
			Samples: set.repeat, P50: rps(median(c)),
			Notes: fmt.Sprintf("**%.2f× the single-host configuration** (target ≥ 0.9×; ratio of the medians; run by run: %s); requests/s (median) in p50; %s, %s; %s; %s; configuration: %s, rendered in %s; %s; %s",
				ratio, strings.Join(paired, ", "), which, c.host, rates(c), failures(c), size, renderBig.Round(time.Millisecond), setup, cmd)})
		b.Logf("%s (%s): %.0f req/s = %.2f× single (%.0f req/s)", c.name, c.host, median(c), ratio, single)
	}
}
