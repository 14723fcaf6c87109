package cluster

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/admin"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// replica is one sidecar with its own config-dir and ports, which can be
// killed (kill -9: HAProxy keeps running) and started again on the same
// ones, adopting its HAProxy.
type replica struct {
	t    *testing.T
	name string
	proc *sidecartest.Sidecar
}

func (e *env) newReplica(name, haproxy string, extra ...string) *replica {
	t := e.t
	kubeconfig, err := e.cluster.WriteKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	return &replica{t: t, name: name, proc: sidecartest.Start(t, sidecartest.Options{HAProxy: haproxy, Kubeconfig: kubeconfig,
		MinReloadInterval: 100 * time.Millisecond, Args: extra, Wait: sidecartest.WaitNone})}
}

// replica starts a replica and waits until it is ready.
func (e *env) replica(name, haproxy string, extra ...string) *replica {
	r := e.newReplica(name, haproxy, extra...)
	r.proc.Eventually(60*time.Second, name+" ready", func() error {
		if code, body := r.readyz(); code != 200 {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
	return r
}

// start starts the replica again on its directories and ports.
func (r *replica) start() { r.proc = sidecartest.Start(r.t, r.proc.Options) }

// kill sends SIGKILL to the sidecar alone: the HAProxy it started keeps
// serving, for the next sidecar to adopt.
func (r *replica) kill() {
	if err := r.proc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !r.proc.Exited(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			r.t.Fatalf("%s: still running after SIGKILL", r.name)
		}
	}
}

func (r *replica) readyz() (int, string) { return r.probe("/readyz") }

func (r *replica) probe(path string) (int, string) {
	code, body, err := sidecartest.Get(r.proc.HealthPort, "localhost", path)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

func (r *replica) status() (admin.Status, error) {
	st, _, err := r.proc.TryStatus()
	return st, err
}

// metric reads one unlabelled sample from /metrics.
func (r *replica) metric(name string) (float64, error) {
	code, body, err := sidecartest.Get(r.proc.HealthPort, "localhost", "/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("/metrics %d %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// get sends one request through the replica's HAProxy.
func (r *replica) get(host string) string {
	code, body, err := sidecartest.Get(r.proc.HTTPPort, host, "/")
	if err != nil {
		return err.Error()
	}
	if code == 200 && strings.HasPrefix(body, "service=") {
		return strings.TrimSpace(body)
	}
	return "status:" + strconv.Itoa(code)
}

// poller sends a request every 20 ms, each on a new connection, and
// counts those that do not reach an echo backend; it stops after
// pollLimit or maxPolls requests at the latest.
type poller struct {
	mu       sync.Mutex
	ok, fail int
	samples  []string
	stop     chan struct{}
	done     chan struct{}
}

const (
	pollLimit = 8 * time.Minute
	maxPolls  = 30000
)

func startPolling(t *testing.T, port int, host string) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		end := time.Now().Add(pollLimit)
		for n := 0; n < maxPolls && time.Now().Before(end); n++ {
			code, body, err := sidecartest.Get(port, host, "/")
			p.mu.Lock()
			if err == nil && code == 200 && strings.HasPrefix(body, "service=") {
				p.ok++
			} else {
				p.fail++
				if len(p.samples) < 5 {
					p.samples = append(p.samples, fmt.Sprintf("%s: %d %.40q %v", time.Now().Format("15:04:05.000"), code, body, err))
				}
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(p.end)
	return p
}

func (p *poller) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *poller) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d ok, %d failed %v", p.ok, p.fail, p.samples)
}

// eventually polls f every 50 ms until it returns nil or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outageVisible checks that a replica shows the outage: /readyz 200 with
// a degraded line naming the API server, /status's source, the metric.
func outageVisible(r *replica) error {
	if code, body := r.readyz(); code != 200 || !strings.Contains(body, "degraded: source: Kubernetes API server unreachable since") {
		return fmt.Errorf("readyz %d %q", code, body)
	}
	st, err := r.status()
	if err != nil {
		return err
	}
	if st.Source == nil || st.Source.Up || st.Source.DownSince == nil || st.Source.LastError == "" {
		return fmt.Errorf("/status source %+v", st.Source)
	}
	if up, err := r.metric("haproxy_sidecar_source_up"); err != nil || up != 0 {
		return fmt.Errorf("haproxy_sidecar_source_up %v %v", up, err)
	}
	if age, err := r.metric("haproxy_sidecar_source_sync_age_seconds"); err != nil || age <= 0 {
		return fmt.Errorf("haproxy_sidecar_source_sync_age_seconds %v %v", age, err)
	}
	if n := r.proc.LogCount("Kubernetes API server unreachable"); n == 0 {
		return fmt.Errorf("no log line says the API server is unreachable")
	}
	return nil
}

// outageOver checks that the outage's end is visible.
func outageOver(r *replica) error {
	if code, body := r.readyz(); code != 200 || strings.Contains(body, "degraded: source") {
		return fmt.Errorf("readyz %d %q", code, body)
	}
	st, err := r.status()
	if err != nil {
		return err
	}
	if st.Source == nil || !st.Source.Up {
		return fmt.Errorf("/status source %+v", st.Source)
	}
	if up, err := r.metric("haproxy_sidecar_source_up"); err != nil || up != 1 {
		return fmt.Errorf("haproxy_sidecar_source_up %v %v", up, err)
	}
	if n := r.proc.LogCount("Kubernetes API server reachable again"); n == 0 {
		return fmt.Errorf("no log line says the API server is back")
	}
	return nil
}

// The API server is killed for 40 s, then for 120 s, under two replicas
// (HAProxy 2.6 and 3.0) with a client polling each: no request fails,
// the outage shows in the log, /readyz, /status and the metrics while it
// lasts, and changes made after the API server is back (an endpoint
// moved, an Ingress added) are served within 5 s however long it was
// away. During the second outage one replica is restarted (kill -9, then
// a new sidecar adopts its HAProxy): it is ready within seconds, serving
// the configuration from before.
func TestClusterAPIServerOutage(t *testing.T) {
	e := start0(t)
	backends := []*kube.Echo{kube.StartEcho(t, "web0", kube.BackendIP(0)+":8080"), kube.StartEcho(t, "web1", kube.BackendIP(1)+":8080")}
	_ = backends
	e.service("web", 8080, kube.BackendIP(0))
	e.create(ingress("web", "web.test", "/", "web"))
	common := []string{"--election-namespace", e.ns}
	replicas := []*replica{e.replica("a", testenv.HAProxy26(t), common...), e.replica("b", testenv.HAProxy30(t), common...)}
	for _, r := range replicas {
		eventually(t, 20*time.Second, r.name+" serves web.test", func() error {
			if got := r.get("web.test"); got != "service=web0" {
				return fmt.Errorf("got %s", got)
			}
			return nil
		})
	}
	var polls []*poller
	for _, r := range replicas {
		polls = append(polls, startPolling(t, r.proc.HTTPPort, "web.test"))
	}

	for i, d := range []time.Duration{40 * time.Second, 120 * time.Second} {
		if err := e.cluster.KillAPIServer(); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		for _, r := range replicas {
			took := eventually(t, 15*time.Second, r.name+": outage visible", func() error { return outageVisible(r) })
			t.Logf("%s: outage visible %v after the API server stopped", r.name, took.Round(time.Millisecond))
		}
		var fresh *replica
		if i == 0 {
			// A replica that has never served stays unready while the
			// API server is away, and its startup probe fails.
			fresh = e.newReplica("fresh", testenv.HAProxy26(t), common...)
			time.Sleep(5 * time.Second)
			for _, path := range []string{"/readyz", "/startupz"} {
				if code, body := fresh.probe(path); code != 503 {
					t.Errorf("%s of a replica that never served, during the outage: %d %q, want 503", path, code, body)
				}
			}
		}
		if i == 1 {
			// Restarted while the API server is away: adopts HAProxy and
			// is ready at once, saying why it is degraded.
			b := replicas[1]
			b.kill()
			b.start()
			took := eventually(t, 10*time.Second, "restarted replica ready", func() error {
				if code, body := b.readyz(); code != 200 || !strings.Contains(body, "degraded: source") {
					return fmt.Errorf("readyz %d %q", code, body)
				}
				return nil
			})
			t.Logf("replica restarted during the outage ready after %v", took.Round(time.Millisecond))
			_, body := b.readyz()
			t.Logf("its /readyz:\n%s", body)
			if got := b.get("web.test"); got != "service=web0" && got != "service=web1" {
				t.Errorf("restarted replica serves %s", got)
			}
		}
		time.Sleep(time.Until(down.Add(d)))
		if err := e.cluster.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		if fresh != nil {
			took := eventually(t, 30*time.Second, "the fresh replica ready once the API server is back", func() error {
				if code, body := fresh.readyz(); code != 200 {
					return fmt.Errorf("readyz %d %q", code, body)
				}
				return nil
			})
			t.Logf("the replica started during the outage was ready %v after the API server", took.Round(time.Millisecond))
			fresh.proc.Stop()
		}
		t.Logf("API server was down %v (killed, then started and ready again)", back.Sub(down).Round(time.Millisecond))
		// Changes made right after it is back: the endpoint moves to the
		// other backend and a new Ingress appears.
		to := (i + 1) % 2
		es, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Get(e.ctx(), "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		es.Endpoints[0].Addresses = []string{kube.BackendIP(to)}
		if _, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Update(e.ctx(), es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		host := fmt.Sprintf("new%d.test", i)
		e.create(ingress(fmt.Sprintf("new%d", i), host, "/", "web"))
		changed := time.Now()
		want := fmt.Sprintf("service=web%d", to)
		for _, r := range replicas {
			eventually(t, 60*time.Second, r.name+": changes served after the outage", func() error {
				if got := r.get(host); got != want {
					return fmt.Errorf("%s: %s", host, got)
				}
				if got := r.get("web.test"); got != want {
					return fmt.Errorf("web.test: %s", got)
				}
				return nil
			})
			took := time.Since(changed)
			t.Logf("%s: changes after a %v outage served %v after they were made", r.name, d, took.Round(time.Millisecond))
			if took > 5*time.Second {
				t.Errorf("%s: changes after a %v outage served after %v, want within 5s", r.name, d, took.Round(time.Millisecond))
			}
		}
		// Then a change at a time for the first seconds: each new
		// Ingress served by both replicas within 5 s of its creation.
		var lat []time.Duration
		for k := range changesAfterOutage {
			host := fmt.Sprintf("after%d-%d.test", i, k)
			e.create(ingress(fmt.Sprintf("after%d-%d", i, k), host, "/", "web"))
			made := time.Now()
			for _, r := range replicas {
				eventually(t, 60*time.Second, r.name+": "+host, func() error {
					if got := r.get(host); got != want {
						return fmt.Errorf("%s: %s", host, got)
					}
					return nil
				})
			}
			lat = append(lat, time.Since(made))
		}
		slices.Sort(lat)
		t.Logf("after the %v outage: %d changes one after the other, served by both replicas in p50 %v, max %v", d, len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		if worst := lat[len(lat)-1]; worst > 5*time.Second {
			t.Errorf("a change after the %v outage was served after %v, want within 5s", d, worst.Round(time.Millisecond))
		}
		for _, r := range replicas {
			eventually(t, 15*time.Second, r.name+": outage over", func() error { return outageOver(r) })
		}
	}
	for i, p := range polls {
		p.end()
		t.Logf("poller of %s: %s", replicas[i].name, p)
		if p.fail != 0 {
			t.Errorf("poller of %s: %s, want no failure", replicas[i].name, p)
		}
		if p.ok < 1000 {
			t.Errorf("poller of %s: only %d requests", replicas[i].name, p.ok)
		}
	}
	// The log says when the outage ended and how long it lasted; the
	// lines of runtime-only passes name the generation on disk, not 0.
	for _, r := range replicas {
		runtime := 0
		for _, line := range strings.Split(r.proc.Logs.String(), "\n") {
			if strings.Contains(line, "reachable again") {
				t.Logf("%s: %s", r.name, line)
			}
			if strings.Contains(line, "updated HAProxy at run time") {
				runtime++
				if strings.Contains(line, `"generation":0,`) || !strings.Contains(line, `"generation":`) {
					t.Errorf("%s: %s", r.name, line)
				}
			}
		}
		if runtime == 0 {
			t.Errorf("%s: no change was applied at run time", r.name)
		}
	}
}

// changesAfterOutage is how many Ingresses are created one after the
// other once the API server is back; with 20 the largest latency is the
// p95 of the first seconds after an outage.
const changesAfterOutage = 20

// start0 is start without a sidecar.
func start0(t *testing.T) *env {
	c := kube.Start(t)
	e := &env{t: t, cluster: c, client: c.Client, ns: "e2e-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	e.create(namespace(e.ns))
	e.create(defaultClass())
	return e
}
