package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// BenchmarkPeers is the side-by-side benchmark (`make bench-peers`): this
// project and the peer ingress controllers BENCH_PEERS names
// (hi=PATH,ht=PATH: their binaries, scripts/install-peers.sh builds them),
// one after the other, each against a fresh etcd and kube-apiserver loaded
// with the same workload as BenchmarkCluster (1,000 Ingresses, 200
// Services by default), each with its own HAProxy 3.0 in this benchmark's
// network namespace, the same echo endpoints and the same probes. It
// prints one table: p50 / p99 of each path, each peer's ratio to this
// project's.
//
// Settings: BENCH_PEERS; BENCH_PEER_SIZE (Ingresses, default 1000);
// BENCH_PEER_RUNS (which columns, default "sidecar hi-default hi-fastest
// ht"); BENCH_PEER_CHANGES (changes per path, default 100);
// BENCH_PEER_RELOADS (new Service + Ingress, default 30); BENCH_PEER_STARTS
// (default 3); BENCH_SIDECAR_BIN; BENCH_OUT (the table is also written
// there).
func BenchmarkPeers(b *testing.B) {
	peers, err := ParsePeers(os.Getenv("BENCH_PEERS"))
	if err != nil {
		b.Fatal(err)
	}
	ps := peerSettings{
		size:    atoiOr(b, "BENCH_PEER_SIZE", 1000),
		changes: atoiOr(b, "BENCH_PEER_CHANGES", 100),
		reloads: atoiOr(b, "BENCH_PEER_RELOADS", 30),
		starts:  atoiOr(b, "BENCH_PEER_STARTS", 3),
		haproxy: testenv.HAProxy30(b),
		binary:  os.Getenv("BENCH_SIDECAR_BIN"),
	}
	if ps.binary == "" {
		ps.binary = sidecartest.Binary(b)
	}
	runs := fieldsOr("BENCH_PEER_RUNS", "sidecar hi-default hi-fastest ht")
	var cs []Contender
	for _, name := range runs {
		ct, ok := contenders[name]
		if !ok {
			b.Fatalf("BENCH_PEER_RUNS: %q is none of sidecar, hi-default, hi-fastest, ht", name)
		}
		c := Contender{Label: ct.label}
		bin := ps.binary
		if ct.peer != "" {
			if bin = peers[ct.peer]; bin == "" {
				c.Notes = append(c.Notes, fmt.Sprintf("not given: BENCH_PEERS has no %s", ct.peer))
				cs = append(cs, c)
				b.Logf("%s: not run, BENCH_PEERS has no %s", ct.label, ct.peer)
				continue
			}
		}
		b.Run(name, func(b *testing.B) {
			pr := &peerRun{b: b, ps: ps, ct: ct, bin: bin, c: &c}
			defer func() { cs = append(cs, c) }()
			pr.all()
		})
	}
	table := PeersTable(cs)
	var notes []string
	for _, c := range cs {
		for _, n := range c.Notes {
			notes = append(notes, fmt.Sprintf("- %s: %s", c.Label, n))
		}
	}
	header := fmt.Sprintf("Side by side (%s): %d Ingresses, %d Services, HAProxy 3.0 for all; %d changes per path, %d new Services, %d starts; %d cores, %s memory\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), ps.size, Spec{Ingresses: ps.size}.Services(), ps.changes, ps.reloads, ps.starts, nproc(), memTotal())
	out := header + table
	if len(notes) > 0 {
		out += "\n" + strings.Join(notes, "\n") + "\n"
	}
	fmt.Printf("\n%s\n", out)
	if path := os.Getenv("BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			b.Errorf("BENCH_OUT: %v", err)
		}
	}
}

type peerSettings struct {
	size, changes, reloads, starts int
	haproxy                        string // HAProxy 3.0
	binary                         string // haproxy-sidecar
}

// contender is how one column's controller is started.
type contender struct {
	label string
	peer  string // BENCH_PEERS key; "" for this project
	class string // IngressClass name; "" for ClassName
	// controllerName is the IngressClass's spec.controller.
	controllerName string
	start          func(pr *peerRun) controllerProcess
}

var contenders = map[string]contender{
	"sidecar": {label: "this project", start: startSidecar},
	"hi-default": {label: "haproxy-ingress, default", peer: "hi", class: "haproxy", controllerName: "haproxy-ingress.github.io/controller",
		start: func(pr *peerRun) controllerProcess { return startHAProxyIngress(pr, nil) }},
	"hi-fastest": {label: "haproxy-ingress, fastest", peer: "hi", class: "haproxy", controllerName: "haproxy-ingress.github.io/controller",
		start: func(pr *peerRun) controllerProcess {
			return startHAProxyIngress(pr, []string{"--rate-limit-update=10", "--wait-before-update=0s"})
		}},
	"ht": {label: "haproxytech, default", peer: "ht", class: "haproxy", controllerName: "haproxy.org/ingress-controller/haproxy", start: startHAProxyTech},
}

// controllerProcess is a started controller with its HAProxy.
type controllerProcess interface {
	Front() Front
	// Done is closed when the controller process has exited.
	Done() <-chan struct{}
	PeakRSS() (int64, error)
	// Mark is called before a change is written; the function it returns
	// waits until that change has been applied and the controller is
	// quiet again, so that the next change is measured alone.
	Mark() func() error
	// Settle waits until the controller is quiet after its start.
	Settle() error
	LogTail() string
	Stop()
}

type peerRun struct {
	b        *testing.B
	ps       peerSettings
	ct       contender
	bin      string
	c        *Contender
	spec     Spec
	cluster  *kube.Cluster
	client   kubernetes.Interface
	services int
}

func (pr *peerRun) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	pr.b.Cleanup(cancel)
	return ctx
}

func (pr *peerRun) all() {
	pr.setup()
	p := pr.startup()
	if p == nil {
		return
	}
	defer p.Stop()
	pr.c.Ran = true
	pr.c.NewHost = pr.newHost(p)
	pr.c.Endpoint = pr.endpointMoved(p)
	pr.c.NewSvc = pr.newService(p)
	rss, err := p.PeakRSS()
	if err != nil {
		pr.b.Errorf("peak RSS: %v", err)
	}
	pr.c.PeakRSS = rss
	pr.b.Logf("peak RSS %.0f MiB", float64(rss)/(1<<20))
}

// setup: a fresh etcd and kube-apiserver, the echo endpoints, the
// namespace, the contender's IngressClass and the workload naming it.
func (pr *peerRun) setup() {
	b := pr.b
	pr.cluster = kube.Start(b)
	pr.spec = Spec{Ingresses: pr.ps.size, BackendIP: kube.BackendIP, Class: pr.ct.class}
	pr.services = pr.spec.Services()
	cfg := rest.CopyConfig(pr.cluster.Config)
	cfg.QPS, cfg.Burst = 1e5, 1e5
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pr.client = client
	for i := range 2 * GroupSize {
		prefix := "a"
		if i >= GroupSize {
			prefix = "b"
		}
		kube.StartEcho(b, prefix+strconv.Itoa(i%GroupSize), kube.BackendIP(i)+":"+strconv.Itoa(EchoPort))
	}
	if err := Base(pr.ctx(time.Minute), client); err != nil {
		b.Fatal(err)
	}
	if pr.ct.class != "" {
		ic := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: pr.ct.class}, Spec: networkingv1.IngressClassSpec{Controller: pr.ct.controllerName}}
		if _, err := client.NetworkingV1().IngressClasses().Create(pr.ctx(time.Minute), ic, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	res, err := Load(pr.ctx(30*time.Minute), client, pr.spec)
	if err != nil {
		b.Fatalf("load after %d objects: %v", res.Objects, err)
	}
	b.Logf("loaded %d objects in %s", res.Objects, res.Duration.Round(time.Millisecond))
}

// ingress is NewIngress with the contender's class.
func (pr *peerRun) ingress(name, host, service string) *networkingv1.Ingress {
	ing := NewIngress(name, host, service, false)
	if pr.ct.class != "" {
		class := pr.ct.class
		ing.Spec.IngressClassName = &class
	}
	return ing
}

// startup starts the controller BENCH_PEER_STARTS times, each with fresh
// directories and a fresh HAProxy: process start → first 200 for an
// existing host. The last one stays for the changes.
func (pr *peerRun) startup() controllerProcess {
	b := pr.b
	var ds []time.Duration
	failed := 0
	for k := range pr.ps.starts {
		started := time.Now()
		p := pr.ct.start(pr)
		d, err := p.Front().PollUntil(p.Done(), started, 2*time.Minute, Host(0), "/", false, Served)
		if err != nil {
			failed++
			b.Errorf("start %d: %v\n%s", k, err, p.LogTail())
			p.Stop()
			pr.c.Notes = append(pr.c.Notes, fmt.Sprintf("start %d: %v", k, err))
			continue
		}
		ds = append(ds, d)
		b.Logf("start %d: first 200 after %s", k, d.Round(time.Millisecond))
		if k == pr.ps.starts-1 {
			pr.c.Start = Summarise(ds, failed)
			// Let the first passes and reloads settle before measuring.
			if err := p.Settle(); err != nil {
				b.Fatalf("after start: %v", err)
			}
			return p
		}
		p.Stop()
	}
	pr.c.Start = Summarise(ds, failed)
	return nil
}

// newHost: a new Ingress with a new host on an existing Service → its
// first 200. Each change alone.
func (pr *peerRun) newHost(p controllerProcess) Latency {
	b := pr.b
	var ds []time.Duration
	failed := 0
	for k := range pr.ps.changes {
		host := fmt.Sprintf("rt-%05d.bench.test", k)
		wait := p.Mark()
		if err := CreateIngress(pr.ctx(time.Minute), pr.client, pr.ingress(fmt.Sprintf("rt-%05d", k), host, ServiceName(k%pr.services))); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := p.Front().PollUntil(p.Done(), start, changeLimit, host, "/", false, Served); err != nil {
			failed++
			b.Errorf("new host %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		if err := wait(); err != nil {
			b.Fatal(err)
		}
	}
	l := Summarise(ds, failed)
	b.Logf("new host: p50 %s p99 %s (%d, %d not served)", l.P50, l.P99, l.Samples, l.Failed)
	return l
}

// endpointMoved: the EndpointSlice of Service j moves all its endpoints to
// the other group of echo backends → the first answer from there.
func (pr *peerRun) endpointMoved(p controllerProcess) Latency {
	b := pr.b
	var ds []time.Duration
	failed := 0
	group := map[int]int{}
	for k := range pr.ps.changes {
		j := k % pr.services
		to := 1 - group[j]
		group[j] = to
		ctx := pr.ctx(time.Minute)
		es, err := pr.client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, ServiceName(j)+"-1", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		es.Endpoints = pr.spec.EndpointSlice(j, to).Endpoints
		wait := p.Mark()
		if _, err := pr.client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := p.Front().PollUntil(p.Done(), start, changeLimit, Host(j), "/", false, EchoIn([]string{"a", "b"}[to])); err != nil {
			failed++
			b.Errorf("endpoint move %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
		if err := wait(); err != nil {
			b.Fatal(err)
		}
	}
	l := Summarise(ds, failed)
	b.Logf("endpoint moved: p50 %s p99 %s (%d, %d not served)", l.P50, l.P99, l.Samples, l.Failed)
	return l
}

// newService: a new Service, its EndpointSlice and an Ingress for it →
// the first 200; back to back, as BenchmarkCluster's reload path.
func (pr *peerRun) newService(p controllerProcess) Latency {
	b := pr.b
	var ds []time.Duration
	failed := 0
	for k := range pr.ps.reloads {
		name := fmt.Sprintf("new-%05d", k)
		host := name + ".bench.test"
		ctx := pr.ctx(time.Minute)
		if err := CreateService(ctx, pr.client, NewService(name)); err != nil {
			b.Fatal(err)
		}
		if err := CreateEndpointSlice(ctx, pr.client, NewEndpointSlice(name, pr.spec.Addrs(k, 0))); err != nil {
			b.Fatal(err)
		}
		if err := CreateIngress(ctx, pr.client, pr.ingress(name, host, name)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if d, err := p.Front().PollUntil(p.Done(), start, changeLimit, host, "/", false, Served); err != nil {
			failed++
			b.Errorf("new Service %d: %v", k, err)
		} else {
			ds = append(ds, d)
		}
	}
	l := Summarise(ds, failed)
	b.Logf("new Service + Ingress: p50 %s p99 %s (%d, %d not served)", l.P50, l.P99, l.Samples, l.Failed)
	return l
}

// sidecarProcess is this project's controller, measured as
// BenchmarkCluster measures it: quiet means no pass for 30 ms.
type sidecarProcess struct {
	*Sidecar
	b *testing.B
}

func startSidecar(pr *peerRun) controllerProcess {
	kubeconfig, err := pr.cluster.WriteKubeconfig()
	if err != nil {
		pr.b.Fatal(err)
	}
	return sidecarProcess{Sidecar: StartSidecar(pr.b, pr.bin, pr.ps.haproxy, kubeconfig), b: pr.b}
}

func (s sidecarProcess) Front() Front    { return s.Sidecar.Front }
func (s sidecarProcess) LogTail() string { return s.Sidecar.LogTail(8 << 10) }
func (s sidecarProcess) Stop()           { s.StopAll() }
func (s sidecarProcess) Settle() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return s.WaitIdle(ctx, 0, 500*time.Millisecond, 5*time.Minute)
}

func (s sidecarProcess) Mark() func() error {
	before, err := s.Passes()
	if err != nil {
		before = 0
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return s.WaitIdle(ctx, before, quiet, time.Minute)
	}
}

// peerProcess is a peer's controller process. Its HAProxy is its own
// child (haproxy-ingress) or a daemon it started (haproxytech); both run
// with the peer's directory dir on their command line, which is how Stop
// finds them.
type peerProcess struct {
	b     *testing.B
	cmd   *exec.Cmd
	dir   string
	front Front
	done  chan struct{}
	log   string // its output, controller.log in dir
	// settle is how long after a change is served the next one waits, and
	// jitter a random addition to it (see Mark).
	settle, jitter time.Duration
}

func (p *peerProcess) Front() Front          { return p.front }
func (p *peerProcess) Done() <-chan struct{} { return p.done }
func (p *peerProcess) PeakRSS() (int64, error) {
	return VmHWM(p.cmd.Process.Pid)
}
func (p *peerProcess) LogTail() string {
	data, _ := os.ReadFile(p.log)
	return string(data[max(0, len(data)-8<<10):])
}

// Mark: a peer has no count of its passes to wait on, so the next change
// waits settle after this one was served (longer than the peer's own
// spacing of updates), plus a random jitter: a peer that applies changes
// on a fixed period is then caught at a random point of it, not always
// just after its last sync.
func (p *peerProcess) Mark() func() error {
	return func() error {
		d := p.settle
		if p.jitter > 0 {
			d += rand.N(p.jitter)
		}
		select {
		case <-p.done:
			return fmt.Errorf("the controller exited:\n%s", p.LogTail())
		case <-time.After(d):
			return nil
		}
	}
}

// Settle: a peer's first updates after its start are over within a few
// seconds (haproxytech syncs every 5 s, haproxy-ingress at most every 2 s).
func (p *peerProcess) Settle() error {
	select {
	case <-p.done:
		return fmt.Errorf("the controller exited:\n%s", p.LogTail())
	case <-time.After(6 * time.Second):
		return nil
	}
}

// Stop sends SIGTERM to the controller, then kills what is left: the
// process group, and every HAProxy whose command line names its directory.
func (p *peerProcess) Stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.b.Logf("the controller did not stop within 30s of SIGTERM")
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	sidecartest.KillHAProxies(p.dir)
}

// startPeer starts a peer's controller (its binary, args) in cwd with env
// added to the environment; dir is its own directory, where its log
// (controller.log) is written.
func startPeer(pr *peerRun, dir, cwd string, front Front, env []string, args ...string) *peerProcess {
	b := pr.b
	p := &peerProcess{b: b, dir: dir, front: front, done: make(chan struct{}), log: filepath.Join(dir, "controller.log")}
	// A file, not a pipe: the HAProxy it starts inherits its output, and
	// Wait would wait for a pipe's last writer, HAProxy, too.
	logFile, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	out := logFile
	p.cmd = exec.Command(pr.bin, args...)
	p.cmd.Dir = cwd
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	b.Cleanup(func() {
		p.Stop()
		logFile.Close()
		// BENCH_PEER_LOGS keeps each start's log (TempDir removes dir).
		if keep := os.Getenv("BENCH_PEER_LOGS"); keep != "" {
			name := strings.NewReplacer("/", "-", " ", "-").Replace(b.Name()) + "-" + filepath.Base(dir) + ".log"
			data, _ := os.ReadFile(p.log)
			if err := os.WriteFile(filepath.Join(keep, name), data, 0o644); err != nil {
				b.Errorf("BENCH_PEER_LOGS: %v", err)
			}
		}
	})
	return p
}

// startHAProxyIngress runs haproxy-ingress as its image does (start.sh:
// the Lua scripts copied into /etc/haproxy/lua, then the controller), on a
// local filesystem prefix: its own embedded HAProxy in master-worker mode
// (its default), started as `haproxy` from PATH, here HAProxy 3.0. Its
// templates are read from ./rootfs/etc/templates, so it runs in the
// directory install-peers.sh made, next to its binary; its Lua scripts
// load the `json` module its image ships (lua-json4 there, Debian's
// lua-json here, found through LUA_PATH_5_4).
func startHAProxyIngress(pr *peerRun, extra []string) controllerProcess {
	b := pr.b
	home := filepath.Dir(pr.bin)
	for _, need := range []string{"rootfs/etc/templates/haproxy/haproxy.tmpl", "rootfs/etc/lua/haproxy-lua-http.lua"} {
		if _, err := os.Stat(filepath.Join(home, need)); err != nil {
			b.Fatalf("haproxy-ingress: %v (scripts/install-peers.sh puts its rootfs next to the binary)", err)
		}
	}
	if _, err := os.Stat(luaJSON); err != nil {
		b.Fatalf("haproxy-ingress's Lua scripts load the json module: %v (apt-get install lua-json; scripts/install-peers.sh does)", err)
	}
	dir := b.TempDir()
	prefix := filepath.Join(dir, "fs")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{filepath.Join(prefix, "etc/haproxy"), bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-R", filepath.Join(home, "rootfs/etc/lua"), filepath.Join(prefix, "etc/haproxy/")).CombinedOutput(); err != nil {
		b.Fatalf("copy Lua scripts: %v: %s", err, out)
	}
	if err := os.Symlink(pr.ps.haproxy, filepath.Join(bin, "haproxy")); err != nil {
		b.Fatal(err)
	}
	kubeconfig, err := pr.cluster.WriteKubeconfig()
	if err != nil {
		b.Fatal(err)
	}
	healthz := testenv.FreePort(b)
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--local-filesystem-prefix=" + prefix,
		// Its default writes Ingress status, which needs a pod name or a
		// published address; none of the three writes status here (the
		// sidecar without --publish-*, haproxytech without
		// --publish-service).
		"--update-status=false",
		"--healthz-addr=127.0.0.1:" + strconv.Itoa(healthz),
	}, extra...)
	env := []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		// As in its pod (the Downward API): leader election, which
		// --watch-gateway (default true) needs, takes its Lease there.
		"POD_NAMESPACE=" + Namespace,
		"LUA_PATH_5_4=" + filepath.Dir(luaJSON) + "/?.lua;;",
	}
	p := startPeer(pr, dir, home, Front{HTTPPort: 80, HTTPSPort: 443}, env, args...)
	// Its rate limit spaces updates (0.5/s by default, 10/s fastest).
	p.settle = 2200 * time.Millisecond
	if slices.Contains(extra, "--rate-limit-update=10") {
		p.settle = 300 * time.Millisecond
	}
	return p
}

// luaJSON is Debian's lua-json (luajson, pure Lua, the API of the
// lua-json4 module haproxy-ingress's image ships); Debian installs it for
// Lua 5.1 to 5.3, HAProxy 3.0 here links Lua 5.4 and loads it from there.
const luaJSON = "/usr/share/lua/5.3/json.lua"

// startHAProxyTech runs haproxytech's controller outside its image, in
// its external mode (-e): it writes its own haproxy.cfg (the one its image
// ships, embedded in the binary: `daemon`, `master-worker`, a pidfile) and
// starts HAProxy 3.0 itself with the flags its image's s6 service uses
// (`-W -S <master socket>,level,admin -f haproxy.cfg`), reloading it with
// SIGUSR2. Default settings: a 5 s --sync-period. It has no readiness
// endpoint (only HAProxy's /healthz monitor): the probes' first 200 is
// the only sign it serves.
func startHAProxyTech(pr *peerRun) controllerProcess {
	b := pr.b
	dir := b.TempDir()
	kubeconfig, err := pr.cluster.WriteKubeconfig()
	if err != nil {
		b.Fatal(err)
	}
	ports := sidecartest.FreePorts(b, 2)
	front := Front{HTTPPort: ports[0], HTTPSPort: ports[1]}
	args := []string{
		"-e",
		"--program=" + pr.ps.haproxy,
		"--config-dir=" + filepath.Join(dir, "etc"),
		"--runtime-dir=" + filepath.Join(dir, "run"),
		"--kubeconfig=" + kubeconfig,
		"--ingress.class=haproxy",
		// 8080 is the echo endpoints' port; IPv6 and QUIC are not in
		// this namespace or this HAProxy build.
		"--http-bind-port=" + strconv.Itoa(front.HTTPPort),
		"--https-bind-port=" + strconv.Itoa(front.HTTPSPort),
		"--disable-ipv6",
		"--disable-quic",
	}
	// As in its pod (its Deployment sets both from the Downward API); the
	// pod name's prefix names the pods it would peer with (none here).
	env := []string{"POD_NAMESPACE=" + Namespace, "POD_NAME=haproxy-kubernetes-ingress-5d4c8b7f9-x2x7q"}
	p := startPeer(pr, dir, dir, front, env, args...)
	// Ingress changes wait for the next sync (every 5 s): the jitter
	// spreads the writes over that period.
	p.settle, p.jitter = 300*time.Millisecond, 5*time.Second
	return p
}
