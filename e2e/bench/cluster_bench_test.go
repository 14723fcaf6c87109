package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// TestMain enters a fresh network namespace only when benchmarks were
// asked for (-bench): `go test ./...` compiles this package and runs its
// few unit tests, without root, a namespace or an API server.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(kube.RunInNetns(m))
}

// Settings from the environment (make bench passes them through).
type settings struct {
	sizes     []int    // BENCH_SIZES: Ingress counts, default "1000 10000"
	versions  []string // BENCH_HAPROXY: HAProxy versions, default "2.6 3.0"
	tls       []string // BENCH_TLS: versions that also run the 1k-TLS-Secret variant, default "2.6 3.0"; "none" for none
	changes   int      // BENCH_CHANGES: runtime-path and endpoint changes per configuration, default 100
	reloads   int      // BENCH_RELOADS: new-Service changes of each kind, default 100
	starts    int      // BENCH_STARTS: sidecar starts, default 5
	tlsStarts int      // BENCH_TLS_STARTS: sidecar starts in the TLS variant, default 1
	variants  []string // BENCH_VARIANTS: which of "plain tls applied" run (tls only for the BENCH_TLS versions; applied: objects as kubectl and the EndpointSlice controller write them, Spec.Applied), default "plain tls"
	out       string   // BENCH_OUT: file the results table is written to (BENCH_LABEL: text for its title)
	goResults []string // BENCH_GO_RESULTS: files of `go test -bench` output to add to the table
	binary    string   // BENCH_SIDECAR_BIN: a built haproxy-sidecar; default: go build of this tree
	// BENCH_PUBLISH: an address the sidecar publishes in the status of
	// the Ingresses it serves (--publish-address), as a deployment does;
	// default none (no status written).
	publish string
	// BENCH_STEPS: which of the cluster part's changes run after the
	// starts, default all of "runtime endpoint certificates reload".
	steps map[string]bool
	// BENCH_ONLY: which parts run, default all of "cluster soak throughput
	// check render" (cluster: the measurements above for each size; the
	// others: soak_bench_test.go, throughput_bench_test.go,
	// check_bench_test.go, render_bench_test.go).
	only map[string]bool
	soak soakSettings
	tput throughputSettings
	chk  checkSettings
	rnd  renderSettings
}

// parts are the values BENCH_ONLY may name, in the order they run.
var parts = []string{"cluster", "soak", "throughput", "check", "render"}

// steps are the values BENCH_STEPS may name, in the order they run.
var steps = []string{"runtime", "endpoint", "certificates", "reload"}

func loadSettings(b *testing.B) settings {
	s := settings{
		versions:  fieldsOr("BENCH_HAPROXY", "2.6 3.0"),
		tls:       fieldsOr("BENCH_TLS", "2.6 3.0"),
		changes:   atoiOr(b, "BENCH_CHANGES", 100),
		reloads:   atoiOr(b, "BENCH_RELOADS", 100),
		starts:    atoiOr(b, "BENCH_STARTS", 5),
		tlsStarts: atoiOr(b, "BENCH_TLS_STARTS", 1),
		variants:  fieldsOr("BENCH_VARIANTS", "plain tls"),
		out:       os.Getenv("BENCH_OUT"),
		binary:    os.Getenv("BENCH_SIDECAR_BIN"),
		publish:   os.Getenv("BENCH_PUBLISH"),
	}
	for _, f := range fieldsOr("BENCH_SIZES", "1000 10000") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_SIZES: %q is not a positive number", f)
		}
		s.sizes = append(s.sizes, n)
	}
	s.goResults = strings.Fields(os.Getenv("BENCH_GO_RESULTS"))
	s.only = map[string]bool{}
	for _, p := range fieldsOr("BENCH_ONLY", strings.Join(parts, " ")) {
		if !slices.Contains(parts, p) {
			b.Fatalf("BENCH_ONLY: %q is none of %v", p, parts)
		}
		s.only[p] = true
	}
	s.steps = map[string]bool{}
	for _, p := range fieldsOr("BENCH_STEPS", strings.Join(steps, " ")) {
		if !slices.Contains(steps, p) {
			b.Fatalf("BENCH_STEPS: %q is none of %v", p, steps)
		}
		s.steps[p] = true
	}
	s.soak = loadSoakSettings(b)
	s.tput = loadThroughputSettings(b)
	s.chk = loadCheckSettings(b)
	s.rnd = loadRenderSettings(b)
	return s
}

func fieldsOr(name, def string) []string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return strings.Fields(strings.ReplaceAll(v, ",", " "))
	}
	return strings.Fields(def)
}

func durationOr(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s: %q is not a positive duration", name, v)
	}
	return d
}

func floatOr(b *testing.B, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		b.Fatalf("%s: %q is not a positive number", name, v)
	}
	return f
}

func atoiOr(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s: %q is not a positive number", name, v)
	}
	return n
}

// BenchmarkCluster runs the whole suite once (whatever b.N) and prints one
// results table. "cluster": for each size, HAProxy version and variant, a
// fresh etcd and kube-apiserver, the synthetic cluster loaded in parallel,
// then change → served for sidecar starts, runtime-path changes, endpoint
// moves and reload-path changes, and the sidecar's peak RSS. Then, for each
// HAProxy version, "soak": reloads several times a second for minutes
// under load; "throughput": requests/s to the last of 20k hosts against a
// single-host configuration; "check": haproxy -c of the rendered 10k
// configuration against a minimal one of the same size; "render": the
// offline render of the 10k cluster's dump in each format, the whole
// process. BENCH_ONLY picks some of them.
func BenchmarkCluster(b *testing.B) {
	set := loadSettings(b)
	var rows []Row
	for _, path := range set.goResults {
		f, err := os.Open(path)
		if err != nil {
			b.Fatalf("BENCH_GO_RESULTS: %v", err)
		}
		r, err := GoBenchRows(f)
		f.Close()
		if err != nil {
			b.Fatalf("BENCH_GO_RESULTS %s: %v", path, err)
		}
		rows = append(rows, r...)
	}
	binary := set.binary
	if binary == "" {
		binary = sidecartest.Binary(b)
	}
	// The sidecar's resident file pages (a third of its RSS at 10k) depend
	// on how much of its binary is in the page cache: a fault maps the
	// cached pages around it too. Read whole, every binary starts the same
	// (a freshly built one had 45 MB of them, an older one partly evicted
	// 38 MB). A wrapper script's binary is not read.
	if err := readWhole(binary); err != nil {
		b.Fatal(err)
	}
	bins := testenv.HAProxies(b)
	for _, version := range set.versions {
		if _, ok := bins[version]; !ok {
			b.Fatalf("BENCH_HAPROXY: no HAProxy %q (have 2.6 and 3.0)", version)
		}
	}
	sizes := set.sizes
	if !set.only["cluster"] {
		sizes = nil
	}
	for _, n := range sizes {
		for _, version := range set.versions {
			bin := bins[version]
			var variants []string
			if slices.Contains(set.variants, "plain") {
				variants = append(variants, "plain")
			}
			if slices.Contains(set.variants, "tls") && slices.Contains(set.tls, version) {
				variants = append(variants, "tls")
			}
			if slices.Contains(set.variants, "applied") {
				variants = append(variants, "applied")
			}
			for _, variant := range variants {
				name := fmt.Sprintf("n=%d/haproxy=%s/%s", n, version, variant)
				b.Run(name, func(b *testing.B) {
					r := &run{b: b, set: set, binary: binary, haproxy: bin, version: version, variant: variant,
						spec: Spec{Ingresses: n, BackendIP: kube.BackendIP}}
					r.spec.Applied = variant == "applied"
					if variant == "tls" {
						r.spec.TLSSecrets = min(1000, n)
						r.spec.Cert = func(host string) ([]byte, []byte) { return testenv.SelfSigned(b, host, "bench") }
					}
					// Deferred: a configuration that fails half-way still
					// shows what it measured.
					defer func() { rows = append(rows, r.rows...) }()
					r.all()
				})
			}
		}
	}
	for _, version := range set.versions {
		if set.only["soak"] {
			b.Run(fmt.Sprintf("soak/n=%d/haproxy=%s", set.soak.size, version), func(b *testing.B) {
				r := &run{b: b, set: set, binary: binary, haproxy: bins[version], version: version, variant: "plain",
					spec: Spec{Ingresses: set.soak.size, BackendIP: kube.BackendIP}}
				defer func() { rows = append(rows, r.rows...) }()
				r.soak()
			})
		}
	}
	for _, version := range set.versions {
		if set.only["throughput"] {
			b.Run(fmt.Sprintf("throughput/n=%d/haproxy=%s", set.tput.hosts, version), func(b *testing.B) {
				r := &run{b: b, set: set, binary: binary, haproxy: bins[version], version: version, variant: "plain",
					spec: Spec{Ingresses: set.tput.hosts, BackendIP: kube.BackendIP}}
				defer func() { rows = append(rows, r.rows...) }()
				r.throughput()
			})
		}
	}
	if set.only["check"] {
		b.Run(fmt.Sprintf("check/n=%d", set.chk.size), func(b *testing.B) {
			r := &run{b: b, set: set, binary: binary, variant: "plain",
				spec: Spec{Ingresses: set.chk.size, BackendIP: kube.BackendIP}}
			defer func() { rows = append(rows, r.rows...) }()
			r.check(bins)
		})
	}
	if set.only["render"] {
		b.Run(fmt.Sprintf("render/n=%d", set.rnd.size), func(b *testing.B) {
			version := set.versions[0]
			r := &run{b: b, set: set, binary: binary, haproxy: bins[version], version: version, variant: "plain",
				spec: Spec{Ingresses: set.rnd.size, BackendIP: kube.BackendIP}}
			defer func() { rows = append(rows, r.rows...) }()
			r.render()
		})
	}
	table := Table(rows)
	header := fmt.Sprintf("Results %s(%s): %d cores, %s memory, sidecar %s, %s\n\n",
		labelOf(os.Getenv("BENCH_LABEL")), time.Now().UTC().Format("2006-01-02 15:04 MST"), nproc(), memTotal(),
		describeBinary(set.binary), haproxyVersions(bins, set.versions))
	fmt.Printf("\n%s%s\n", header, table)
	if set.out != "" {
		if err := os.WriteFile(set.out, []byte(header+table), 0o644); err != nil {
			b.Errorf("BENCH_OUT: %v", err)
		}
	}
}

func nproc() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\nprocessor") + map[bool]int{true: 1}[strings.HasPrefix(string(data), "processor")]
}

func labelOf(l string) string {
	if l = strings.TrimSpace(l); l != "" {
		return l + " "
	}
	return ""
}

// memTotal is MemTotal of /proc/meminfo in GiB.
func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "?"
}

// haproxyVersions is the first line of `haproxy -v` of each version used.
func haproxyVersions(bins map[string]string, versions []string) string {
	var out []string
	for _, v := range versions {
		line := "HAProxy " + v + " (?)"
		if data, err := exec.Command(bins[v], "-v").Output(); err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			if f := strings.Fields(first); len(f) >= 3 {
				line = "HAProxy " + f[2]
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, ", ")
}

func describeBinary(path string) string {
	if path == "" {
		return "built from this tree"
	}
	return path
}

// run is one configuration: a cluster, its load and the measurements.
type run struct {
	b        *testing.B
	set      settings
	binary   string
	haproxy  string
	version  string
	variant  string
	spec     Spec
	cluster  *kube.Cluster
	client   kubernetes.Interface
	sidecar  *Sidecar
	rows     []Row
	services int // Services of the spec, cached
}

const (
	// changeLimit bounds the wait for one change to be served.
	changeLimit = 60 * time.Second
	// startLimit bounds the wait for a starting sidecar's first answer.
	startLimit = 10 * time.Minute
	// quiet is how long the loop must stay without a pass to count as idle.
	quiet = 30 * time.Millisecond
)

func (r *run) row(figure string, ds []time.Duration, failed int, notes string) {
	row := LatencyRow(figure, strconv.Itoa(r.spec.Ingresses), r.version, r.variant, ds, failed, notes)
	r.rows = append(r.rows, row)
	r.b.Logf("%s: n=%d p50 %s p90 %s p99 %s max %s %s", figure, row.Samples, row.P50, row.P90, row.P99, row.Max, row.Notes)
}

func (r *run) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	r.b.Cleanup(cancel)
	return ctx
}

func (r *run) all() {
	r.setup(true)
	r.startup()
	r.statusWritten()
	if r.set.steps["runtime"] {
		r.runtimePath()
		r.logPeakRSS("runtime path")
	}
	if r.set.steps["endpoint"] {
		r.endpointChange()
		r.logPeakRSS("endpoint changes")
	}
	if r.variant == "tls" && r.set.steps["certificates"] {
		r.certificates()
		r.logPeakRSS("certificate changes")
	}
	if r.set.steps["reload"] {
		r.reloadPath()
	}
	r.peakRSS()
	r.sidecar.StopAll()
}

// certificates (the TLS variant): a TLS Secret rotated → its host served
// with the new certificate; a new TLS host (its Secret, then an Ingress
// naming it, on an existing Service) → served over HTTPS with its
// certificate. Both go through the runtime API: the notes say how many
// reloads they caused (none is the target). Each change alone.
func (r *run) certificates() {
	b := r.b
	reloadsBefore := r.reloads()
	var ds []time.Duration
	failed := 0
	secrets := r.client.CoreV1().Secrets(Namespace)
	for k := range r.set.changes {
		i := k % r.spec.TLSSecrets
		marker := fmt.Sprintf("rotated-%d", k)
		before := r.passes()
		ctx := r.ctx(time.Minute)
		sec, err := secrets.Get(ctx, SecretName(i), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		cert, key := testenv.SelfSigned(b, Host(i), marker)
		sec.Data = map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := r.sidecar.Poll(start, changeLimit, Host(i), "/", true, func(a Answer) bool { return a.CertOrg == marker }); err != nil {
			failed++
			b.Errorf("rotation %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		r.waitIdle(before)
	}
	reloadsMid := r.reloads()
	r.row("certificate rotation: TLS Secret updated → new certificate served", ds, failed,
		fmt.Sprintf("Secret update returned → first handshake with the new certificate; each change alone; %d reloads", reloadsMid-reloadsBefore))

	ds, failed = nil, 0
	for k := range r.set.changes {
		host := fmt.Sprintf("tls-%05d.bench.test", k)
		name := fmt.Sprintf("new-tls-%05d", k)
		before := r.passes()
		ctx := r.ctx(time.Minute)
		cert, key := testenv.SelfSigned(b, host, name)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}
		if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		ing := NewIngress(name, host, ServiceName(k%r.services), false)
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: name}}
		if err := CreateIngress(ctx, r.client, ing); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := r.sidecar.Poll(start, changeLimit, host, "/", true, func(a Answer) bool { return Served(a) && a.CertOrg == name }); err != nil {
			failed++
			b.Errorf("new TLS host %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		r.waitIdle(before)
	}
	r.row("new TLS host: Secret, then Ingress → first 200 with its certificate", ds, failed,
		fmt.Sprintf("Ingress create returned → first HTTPS 200 with the Secret's certificate; each change alone; %d reloads", r.reloads()-reloadsMid))
}

// reloads is the sidecar's count of reloads so far.
func (r *run) reloads() int {
	m, err := r.sidecar.Metrics("haproxy_sidecar_reloads_total")
	if err != nil {
		r.b.Fatalf("sidecar metrics: %v", err)
	}
	v, _ := Sum(m, "haproxy_sidecar_reloads_total")
	return int(v)
}

// setup starts etcd, kube-apiserver and the echo backends and loads the
// synthetic cluster, with a row for the load when loadRow.
func (r *run) setup(loadRow bool) {
	b := r.b
	r.cluster = kube.Start(b)
	r.services = r.spec.Services()
	// The loader's own client: client-go's rate limiter would otherwise
	// set the pace.
	cfg := rest.CopyConfig(r.cluster.Config)
	cfg.QPS, cfg.Burst = 1e5, 1e5
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r.client = client
	for i := range 2 * GroupSize {
		prefix := "a"
		if i >= GroupSize {
			prefix = "b"
		}
		kube.StartEcho(b, prefix+strconv.Itoa(i%GroupSize), kube.BackendIP(i)+":"+strconv.Itoa(EchoPort))
	}
	if err := Base(r.ctx(time.Minute), client); err != nil {
		b.Fatal(err)
	}
	res, err := Load(r.ctx(30*time.Minute), client, r.spec)
	if err != nil {
		b.Fatalf("load after %d objects: %v", res.Objects, err)
	}
	b.Logf("loaded %d objects in %s (%.0f/s)", res.Objects, res.Duration.Round(time.Millisecond), res.Rate())
	if !loadRow {
		return
	}
	r.rows = append(r.rows, Row{Figure: "load: objects written by " + strconv.Itoa(Writers) + " writers",
		N: strconv.Itoa(r.spec.Ingresses), HAProxy: r.version, Variant: r.variant, Samples: res.Objects,
		Max:   fmt.Sprintf("%.1f s", res.Duration.Seconds()),
		Notes: fmt.Sprintf("%.0f objects/s (%d Ingresses, %d Services, %d EndpointSlices, %d Secrets)", res.Rate(), r.spec.Ingresses, r.services, r.services, r.spec.TLSSecrets)})
}

// peakRSS: the sidecar's peak RSS, as a row.
func (r *run) peakRSS() {
	b := r.b
	rss, err := r.sidecar.PeakRSS()
	if err != nil {
		b.Errorf("peak RSS: %v", err)
	} else {
		passes, _ := r.sidecar.Passes()
		notes := fmt.Sprintf("after %d passes", passes)
		// What the peak is made of: the heap that stays after a
		// collection (the peak holds up to 1.5 times that, GOGC=50).
		if live, err := r.sidecar.LiveHeap(); err != nil {
			b.Errorf("live heap: %v", err)
		} else {
			notes += fmt.Sprintf("; live heap %.1f MiB", float64(live)/(1<<20))
		}
		r.rows = append(r.rows, Row{Figure: "sidecar peak RSS (VmHWM)", N: strconv.Itoa(r.spec.Ingresses), HAProxy: r.version, Variant: r.variant,
			Max: fmt.Sprintf("%.0f MiB", float64(rss)/(1<<20)), Notes: notes})
		b.Logf("peak RSS %.0f MiB after %d passes", float64(rss)/(1<<20), passes)
	}
	// BENCH_PROFILE_DIR keeps the live heap for `go tool pprof`.
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		path := filepath.Join(dir, fmt.Sprintf("memory-%d-%s-%s.txt", r.spec.Ingresses, r.version, r.variant))
		if err := r.sidecar.SaveMemory(path); err != nil {
			b.Errorf("BENCH_PROFILE_DIR: %v", err)
		}
		path = filepath.Join(dir, fmt.Sprintf("heap-%d-%s-%s.pb.gz", r.spec.Ingresses, r.version, r.variant))
		if err := r.sidecar.SaveHeapProfile(path); err != nil {
			b.Errorf("BENCH_PROFILE_DIR: %v", err)
		} else {
			b.Logf("live heap profile: %s", path)
		}
		path = filepath.Join(dir, fmt.Sprintf("run-%d-%s-%s.log", r.spec.Ingresses, r.version, r.variant))
		if err := os.WriteFile(path, []byte(r.sidecar.LogTail(64<<20)), 0o644); err != nil {
			b.Errorf("BENCH_PROFILE_DIR: %v", err)
		}
	}
}

// startSidecar starts a sidecar with a fresh config directory and ports,
// so each start also starts a fresh HAProxy.
func (r *run) startSidecar(extra ...string) *Sidecar {
	b := r.b
	kubeconfig, err := r.cluster.WriteKubeconfig()
	if err != nil {
		b.Fatal(err)
	}
	if r.set.publish != "" {
		extra = append(extra, "--publish-address", r.set.publish)
	}
	return StartSidecar(b, r.binary, r.haproxy, kubeconfig, extra...)
}

// statusWritten waits, with BENCH_PUBLISH, until the sidecar has written
// the status of every Ingress of the cluster, reading them from the API
// server every second: a status write changes nothing the renderer
// reads, so it causes no pass, and the loop is idle long before the
// writes are done. Then it waits for the loop to be idle.
func (r *run) statusWritten() {
	if r.set.publish == "" {
		return
	}
	b := r.b
	start := time.Now()
	deadline := start.Add(20 * time.Minute)
	for {
		list, err := r.client.NetworkingV1().Ingresses(Namespace).List(r.ctx(time.Minute), metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		written := 0
		for _, ing := range list.Items {
			if slices.ContainsFunc(ing.Status.LoadBalancer.Ingress, func(e networkingv1.IngressLoadBalancerIngress) bool {
				return e.IP == r.set.publish || e.Hostname == r.set.publish
			}) {
				written++
			}
		}
		if written == len(list.Items) {
			b.Logf("status of %d Ingresses written in %s", written, time.Since(start).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("BENCH_PUBLISH: %d of %d Ingresses have %s in their status after %s", written, len(list.Items), r.set.publish, time.Since(start).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	if err := r.sidecar.WaitIdle(r.ctx(5*time.Minute), 0, 3*time.Second, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
}

// startup: the sidecar started with the cluster in the API → the first
// right answer for an existing host (over HTTPS in the TLS variant).
func (r *run) startup() {
	b := r.b
	var ds []time.Duration
	failed := 0
	starts := r.set.starts
	if r.variant == "tls" {
		starts = r.set.tlsStarts
	}
	for k := range starts {
		s := r.startSidecar()
		d, err := s.Poll(s.Started, startLimit, Host(0), "/", r.spec.HasTLS(0), Served)
		if err != nil {
			failed++
			b.Errorf("start %d: %v", k, err)
			if s.Exited() {
				r.rows = append(r.rows, Row{Figure: "sidecar start → first 200", N: strconv.Itoa(r.spec.Ingresses), HAProxy: r.version, Variant: r.variant,
					Notes: fmt.Sprintf("**the sidecar exited %s after start: %s**", time.Since(s.Started).Round(time.Second), lastError(s.LogTail(1<<20)))})
				b.FailNow()
			}
		} else {
			ds = append(ds, d)
			b.Logf("start %d: first 200 after %s", k, d.Round(time.Millisecond))
		}
		r.keepStartLog(s, k)
		if k == starts-1 {
			r.sidecar = s
			break
		}
		s.StopAll()
	}
	r.row("sidecar start → first 200", ds, failed, "process start to first right answer; fresh HAProxy each time")
	// Let the first passes settle before measuring changes; with
	// BENCH_PUBLISH, statusWritten waits longer, for every status write
	// (at 50k Ingresses, more than 5 minutes).
	if r.set.publish != "" {
		return
	}
	if err := r.sidecar.WaitIdle(r.ctx(5*time.Minute), 0, 500*time.Millisecond, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
}

// logPeakRSS logs the sidecar's peak RSS after a phase: which phase sets it.
func (r *run) logPeakRSS(after string) {
	if rss, err := r.sidecar.PeakRSS(); err == nil {
		r.b.Logf("peak RSS %.0f MiB after the %s", float64(rss)/(1<<20), after)
	}
}

// keepStartLog writes, with BENCH_PROFILE_DIR, the sidecar's log of start
// k (its first passes name each phase's time) and logs its peak RSS so far:
// whether start-up or the changes after it set the peak.
func (r *run) keepStartLog(s *Sidecar, k int) {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, fmt.Sprintf("start-%d-%s-%s-%d.log", r.spec.Ingresses, r.version, r.variant, k))
	if err := os.WriteFile(path, []byte(s.LogTail(1<<20)), 0o644); err != nil {
		r.b.Errorf("BENCH_PROFILE_DIR: %v", err)
	}
	if rss, err := s.PeakRSS(); err == nil {
		r.b.Logf("start %d: peak RSS %.0f MiB once serving", k, float64(rss)/(1<<20))
	}
}

// runtimePath: a new Ingress with a new host on an existing Service (its
// backend exists): served through the runtime API, no reload. Each change
// is measured alone: the next is written once the sidecar is idle again.
func (r *run) runtimePath() {
	b := r.b
	var ds []time.Duration
	failed := 0
	mem := r.memory()
	for k := range r.set.changes {
		before := r.passes()
		host := fmt.Sprintf("rt-%05d.bench.test", k)
		ing := NewIngress(fmt.Sprintf("rt-%05d", k), host, ServiceName(k%r.services), false)
		if err := CreateIngress(r.ctx(time.Minute), r.client, ing); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := r.sidecar.Poll(start, changeLimit, host, "/", false, Served); err != nil {
			failed++
			b.Errorf("runtime change %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		r.waitIdle(before)
	}
	r.row("runtime path: new host on an existing Service → first 200", ds, failed, "Ingress create returned → first 200; each change alone"+r.memorySince(mem, r.set.changes))
}

// endpointChange: the EndpointSlice of Service j moves all its endpoints
// to the other group of echo backends → the first answer from there.
func (r *run) endpointChange() {
	b := r.b
	var ds []time.Duration
	var stages []Stages
	failed, missing := 0, 0
	group := make(map[int]int)
	mem := r.memory()
	for k := range r.set.changes {
		j := k % r.services
		to := 1 - group[j]
		group[j] = to
		before := r.passes()
		ctx := r.ctx(time.Minute)
		es, err := r.client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, ServiceName(j)+"-1", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		es.Endpoints = r.spec.EndpointSlice(j, to).Endpoints
		if _, err := r.client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		// Ingress j routes to Service j (j < Services).
		want := EchoIn([]string{"a", "b"}[to])
		d, err := r.sidecar.Poll(start, changeLimit, Host(j), "/", r.spec.HasTLS(j), want)
		if err != nil {
			failed++
			b.Errorf("endpoint change %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		r.waitIdle(before)
		if err == nil {
			// The pass is in the history once the loop is idle.
			passes, herr := r.sidecar.History(5)
			if herr != nil {
				b.Fatal(herr)
			}
			if st, ok := StageOf(passes, "EndpointSlice", Namespace, es.Name, controller.OutcomeRuntime, start, start.Add(d)); ok {
				stages = append(stages, st)
			} else {
				missing++
			}
		}
	}
	const figure = "endpoint change: EndpointSlice moved → traffic there"
	r.row(figure, ds, failed, "EndpointSlice update returned → first answer from the new backends; each change alone"+r.memorySince(mem, r.set.changes))
	r.stageRows(figure, stages, missing)
}

// stageRows adds the rows of a change's stages after its figure's row.
func (r *run) stageRows(figure string, stages []Stages, missing int) {
	for _, row := range StageRows(figure, strconv.Itoa(r.spec.Ingresses), r.version, r.variant, stages, missing) {
		r.rows = append(r.rows, row)
		r.b.Logf("%s: p50 %s p90 %s p99 %s max %s", row.Figure, row.P50, row.P90, row.P99, row.Max)
	}
}

// reloadPath: a new Service, its EndpointSlice and an Ingress for it,
// which a spare backend serves without a reload; then each removed again;
// then the same with a backend annotation (timeout-server), which needs a
// backend of its own: haproxy -c and a reload, spaced by the sidecar's
// default rules. Each change is written once the previous is served, and
// each row's notes count the reloads it caused.
func (r *run) reloadPath() {
	b := r.b
	create := func(k int, prefix string, annotations map[string]string) (served, error) {
		name := fmt.Sprintf("%s-%05d", prefix, k)
		host := name + ".bench.test"
		ctx := r.ctx(time.Minute)
		if err := CreateService(ctx, r.client, NewService(name)); err != nil {
			b.Fatal(err)
		}
		if err := CreateEndpointSlice(ctx, r.client, NewEndpointSlice(name, r.spec.Addrs(k, 0))); err != nil {
			b.Fatal(err)
		}
		ing := NewIngress(name, host, name, false)
		ing.Annotations = annotations
		if err := CreateIngress(ctx, r.client, ing); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		d, err := r.sidecar.Poll(start, changeLimit, host, "/", false, Served)
		return served{name, start, d}, err
	}
	var names []string
	r.measureStaged("new Service + Ingress → first 200", "Ingress create returned (Service, EndpointSlice written just before) → first 200; a spare backend", controller.OutcomeRuntime, func(k int) (served, error) {
		s, err := create(k, "new", nil)
		names = append(names, s.name)
		return s, err
	})
	r.measureStaged("Service + Ingress removed → first 404", "Ingress delete returned → first 404 (then its EndpointSlice and Service deleted, its spare emptied)", controller.OutcomeRuntime, func(k int) (served, error) {
		name := names[k]
		ctx := r.ctx(time.Minute)
		if err := r.client.NetworkingV1().Ingresses(Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		d, err := r.sidecar.Poll(start, changeLimit, name+".bench.test", "/", false, func(a Answer) bool { return a.Status == http.StatusNotFound })
		if err := r.client.DiscoveryV1().EndpointSlices(Namespace).Delete(ctx, name+"-1", metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := r.client.CoreV1().Services(Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		return served{name, start, d}, err
	})
	r.measureStaged("reload path: new Service + Ingress with a backend annotation → first 200", "Ingress create returned (Service, EndpointSlice written just before) → first 200; its own backend: a reload", controller.OutcomeReload, func(k int) (served, error) {
		return create(k, "own", map[string]string{"haproxy-sidecar.io/timeout-server": "30s"})
	})
}

// served is one change of an Ingress: written at start, served d later.
type served struct {
	name  string
	start time.Time
	d     time.Duration
}

// measureStaged runs r.set.reloads changes back to back, each written once
// the previous is served, and adds the figure's row (counting the reloads)
// and its stages' rows: each change's pass (one with outcome, triggered by
// the Ingress) is looked for in /history before the next change is written
// (not waiting for the loop to be idle, which would space the reloads),
// the rest at the end.
func (r *run) measureStaged(figure, notes string, outcome controller.Outcome, change func(k int) (served, error)) {
	b := r.b
	var ds []time.Duration
	var pending []served
	var stages []Stages
	resolve := func() {
		passes, err := r.sidecar.History(5)
		if err != nil {
			b.Fatal(err)
		}
		kept := pending[:0]
		for _, p := range pending {
			if st, ok := StageOf(passes, "Ingress", Namespace, p.name, outcome, p.start, p.start.Add(p.d)); ok {
				stages = append(stages, st)
			} else {
				kept = append(kept, p)
			}
		}
		pending = kept
	}
	failed := 0
	before, passes := r.reloads(), r.passes()
	mem := r.memory()
	for k := range r.set.reloads {
		if len(pending) > 0 {
			resolve()
		}
		if s, err := change(k); err != nil {
			failed++
			b.Errorf("%s, change %d: %v", figure, k, err)
		} else {
			ds = append(ds, s.d)
			pending = append(pending, s)
		}
	}
	reloads := r.reloads() - before
	r.waitIdle(passes)
	resolve()
	r.row(figure, ds, failed, fmt.Sprintf("%s; %d changes back to back, %d reloads", notes, r.set.reloads, reloads)+r.memorySince(mem, r.set.reloads))
	r.stageRows(figure, stages, len(pending))
}

// memoryUse is what the sidecar's Go runtime allocated and how many
// collections it ran, so far.
type memoryUse struct{ allocated, collections float64 }

func (r *run) memory() memoryUse {
	m, err := r.sidecar.Metrics("go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count")
	if err != nil {
		r.b.Fatalf("sidecar metrics: %v", err)
	}
	return memoryUse{m["go_memstats_alloc_bytes_total"], m["go_gc_duration_seconds_count"]}
}

// memorySince is a note on what the sidecar allocated and collected a
// change since before, over n changes: how often the collector ran
// beside the passes decides how many of them share the cores with it.
func (r *run) memorySince(before memoryUse, n int) string {
	now := r.memory()
	return fmt.Sprintf("; the sidecar allocated %.1f MB and collected %.2f times a change", (now.allocated-before.allocated)/1e6/float64(n),
		(now.collections-before.collections)/float64(n))
}

func (r *run) passes() int64 {
	n, err := r.sidecar.Passes()
	if err != nil {
		r.b.Fatalf("sidecar passes: %v", err)
	}
	return n
}

func (r *run) waitIdle(before int64) {
	if err := r.sidecar.WaitIdle(r.ctx(time.Minute), before, quiet, time.Minute); err != nil {
		r.b.Fatal(err)
	}
}

// lastError is the message and error of the sidecar's last error-level
// log line (JSON logs), for the table.
func lastError(logs string) string {
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var e struct {
			Level, Msg, Error string
		}
		if json.Unmarshal([]byte(lines[i]), &e) == nil && e.Level == "error" {
			return strings.TrimSpace(e.Msg + ": " + e.Error)
		}
	}
	return "no error in its log"
}

// readWhole reads the file at path to its end, so that the page cache
// holds it.
func readWhole(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
