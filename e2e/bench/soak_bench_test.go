package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// soakSettings: the reload soak (BENCH_ONLY=soak).
type soakSettings struct {
	duration    time.Duration // BENCH_SOAK_DURATION: how long changes are made, default 5m
	size        int           // BENCH_SOAK_SIZE: Ingresses in the cluster, default 1000
	rate        float64       // BENCH_SOAK_RATE: changes that need a reload per second, default 4
	minInterval time.Duration // BENCH_SOAK_MIN_RELOAD_INTERVAL: the sidecar's --min-reload-interval, default 100ms
	clients     int           // BENCH_SOAK_CLIENTS: load clients of each kind, default 2
	paced       int           // BENCH_SOAK_PACED_CLIENTS: keep-alive clients that wait between requests, default 1
	pacedEvery  time.Duration // BENCH_SOAK_PACED_INTERVAL: their interval, default 10ms (the connection idles in between)
}

func loadSoakSettings(b *testing.B) soakSettings {
	s := soakSettings{
		duration:    durationOr(b, "BENCH_SOAK_DURATION", 5*time.Minute),
		size:        atoiOr(b, "BENCH_SOAK_SIZE", 1000),
		rate:        floatOr(b, "BENCH_SOAK_RATE", 4),
		minInterval: durationOr(b, "BENCH_SOAK_MIN_RELOAD_INTERVAL", 100*time.Millisecond),
		clients:     atoiOr(b, "BENCH_SOAK_CLIENTS", 2),
		pacedEvery:  durationOr(b, "BENCH_SOAK_PACED_INTERVAL", 10*time.Millisecond),
	}
	if os.Getenv("BENCH_SOAK_PACED_CLIENTS") != "0" { // 0: none
		s.paced = atoiOr(b, "BENCH_SOAK_PACED_CLIENTS", 1)
	}
	return s
}

const (
	// flipServices is how many Services the soak's Ingress cycles over:
	// changes that coalesce into one pass still end on another backend
	// unless a multiple of flipServices of them do.
	flipServices = 4
	flipHost     = "soak-flip.bench.test"
	flipIngress  = "soak-flip"
)

func flipService(k int) string { return "flip-" + strconv.Itoa(k%flipServices) }

// soak: HAProxy reloaded rate times a second for duration while
// keep-alive and Connection: close clients send requests back to back,
// and paced keep-alive clients (whose connection idles between requests)
// one every pacedEvery, to hosts spread over the cluster; every request
// must get the right answer. Each change moves Ingress soak-flip to the
// next of flipServices Services, so its old backend goes and a new one
// appears: only a reload can do that. Reloads are counted by the
// sidecar's /metrics (haproxy_sidecar_reloads_total) and by HAProxy's
// master (show proc).
func (r *run) soak() {
	b := r.b
	set := r.set.soak
	r.setup(false)
	ctx := r.ctx(set.duration + 30*time.Minute)
	for k := range flipServices {
		if err := CreateService(ctx, r.client, NewService(flipService(k))); err != nil {
			b.Fatal(err)
		}
		if err := CreateEndpointSlice(ctx, r.client, NewEndpointSlice(flipService(k), r.spec.Addrs(k, 1))); err != nil {
			b.Fatal(err)
		}
	}
	if err := CreateIngress(ctx, r.client, NewIngress(flipIngress, flipHost, flipService(0), false)); err != nil {
		b.Fatal(err)
	}

	interval := set.minInterval.String()
	r.sidecar = r.startSidecar("--min-reload-interval", interval)
	s := r.sidecar
	defer s.StopAll()
	for _, host := range []string{Host(0), flipHost} {
		if _, err := s.Poll(s.Started, startLimit, host, "/", false, Served); err != nil {
			b.Fatalf("sidecar start: %v", err)
		}
	}
	if err := s.WaitIdle(r.ctx(5*time.Minute), 0, 500*time.Millisecond, 5*time.Minute); err != nil {
		b.Fatal(err)
	}

	// Eight hosts from the first to the last Ingress.
	var targets []Target
	for k := range 8 {
		targets = append(targets, TargetOf(r.spec, k*(r.spec.Ingresses-1)/7))
	}
	before := r.metrics()
	procsBefore := showProc(b, s)
	port := s.Front.HTTPPort
	clients := []*Clients{StartClients(KeepAlive, set.clients, port, targets, 0), StartClients(Close, set.clients, port, targets, 0)}
	if set.paced > 0 {
		clients = append(clients, StartClients(KeepAlive, set.paced, port, targets, set.pacedEvery))
	}

	// Old HAProxy workers still alive, sampled every second.
	var maxOld float64
	var oldMu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Second):
			}
			if m, err := s.Metrics("haproxy_sidecar_haproxy_old_workers"); err == nil {
				oldMu.Lock()
				maxOld = max(maxOld, m["haproxy_sidecar_haproxy_old_workers"])
				oldMu.Unlock()
			}
		}
	}()

	// The changes, at rate per second (a late tick is not made up for).
	period := time.Duration(float64(time.Second) / set.rate)
	start := time.Now()
	changes := 0
	var patchErr error
	for next := start; time.Since(start) < set.duration && !s.Exited(); {
		changes++
		if patchErr = patchFlip(r, changes); patchErr != nil {
			break
		}
		next = next.Add(period)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	driven := time.Since(start)
	// The last change served: the loop idle for a second after it.
	idleErr := s.WaitIdle(r.ctx(2*time.Minute), 0, time.Second, 2*time.Minute)
	close(stopSampling)
	<-sampled
	var stats []ClientStats
	for _, c := range clients {
		stats = append(stats, c.Stop())
	}
	if patchErr != nil {
		b.Fatalf("change %d: %v", changes, patchErr)
	}
	if idleErr != nil {
		b.Fatalf("after the changes: %v", idleErr)
	}
	after := r.metrics()
	procsAfter := showProc(b, s)

	delta := func(series string) int64 { return int64(after[series] - before[series]) }
	reloads, reloadFailures := delta(`haproxy_sidecar_reloads_total{result="success"}`), delta(`haproxy_sidecar_reloads_total{result="failure"}`)
	outcomes := []string{}
	for _, o := range []string{"reload", "runtime", "unchanged", "written", "rejected", "failed"} {
		if n := delta(`haproxy_sidecar_passes_total{outcome="` + o + `"}`); n > 0 {
			outcomes = append(outcomes, fmt.Sprintf("%d %s", n, o))
		}
	}
	// Mean phases of the passes that changed something (here: reloads).
	var phases []string
	for _, ph := range []string{"read", "render", "plan", "write", "check", "apply"} {
		sum := after[`haproxy_sidecar_pass_phase_duration_seconds_sum{phase="`+ph+`"}`] - before[`haproxy_sidecar_pass_phase_duration_seconds_sum{phase="`+ph+`"}`]
		count := delta(`haproxy_sidecar_pass_phase_duration_seconds_count{phase="` + ph + `"}`)
		if count > 0 {
			phases = append(phases, ph+" "+Ms(time.Duration(sum/float64(count)*float64(time.Second))))
		}
	}
	rate := float64(reloads) / driven.Seconds()
	cmd := benchCmd("BENCH_ONLY=soak", "BENCH_HAPROXY="+r.version, "BENCH_SOAK_DURATION="+set.duration.String(),
		"BENCH_SOAK_SIZE="+strconv.Itoa(set.size), "BENCH_SOAK_RATE="+strconv.FormatFloat(set.rate, 'g', -1, 64),
		"BENCH_SOAK_MIN_RELOAD_INTERVAL="+interval, "BENCH_SOAK_CLIENTS="+strconv.Itoa(set.clients),
		"BENCH_SOAK_PACED_CLIENTS="+strconv.Itoa(set.paced), "BENCH_SOAK_PACED_INTERVAL="+set.pacedEvery.String())
	conditions := fmt.Sprintf("%d reloads in %s (%.2f/s) with --min-reload-interval %s; requests to 8 hosts of %d Ingresses, %s timeout each",
		reloads, driven.Round(time.Second), rate, interval, r.spec.Ingresses, ClientTimeout)
	n := strconv.Itoa(r.spec.Ingresses)
	for _, st := range stats {
		row := LatencyRow("reload soak: "+string(st.Kind)+" clients ("+st.Pace()+"), requests sent", n, r.version, r.variant, st.Latencies, 0, "")
		row.Samples = int(st.Sent)
		failed := fmt.Sprintf("**%d failed**", st.Failed)
		if st.Failed == 0 {
			failed = "0 failed"
		}
		notes := []string{failed + " (non-2xx, connection error, timeout or wrong body); latency of the answered ones"}
		switch st.Kind {
		case KeepAlive:
			notes = append(notes, fmt.Sprintf("clients: %d, one persistent connection each (net/http): %d connections opened, %d requests retried by net/http (a GET written to a reused connection that HAProxy closed without answering is sent again on a new one; counted once)",
				st.Clients, st.Conns, st.Retried))
		case Close:
			notes = append(notes, fmt.Sprintf("clients: %d, Connection: close, a new connection per request", st.Clients))
		}
		notes = append(notes, conditions, cmd)
		row.Notes = strings.Join(notes, "; ")
		r.rows = append(r.rows, row)
		b.Logf("soak %s (%s): %d sent, %d failed, %d retried, %d connections; p50 %s p99 %s max %s", st.Kind, st.Pace(), st.Sent, st.Failed, st.Retried, st.Conns, row.P50, row.P99, row.Max)
		for _, e := range st.Errors {
			b.Logf("  %s failure: %s", st.Kind, e)
		}
		if st.Failed > 0 {
			b.Errorf("reload soak: %d of %d %s requests failed, e.g. %q", st.Failed, st.Sent, st.Kind, st.Errors)
		}
	}
	reloadNotes := fmt.Sprintf("achieved %.2f reloads/s over %s (asked: %g/s): %d changes written, each moving Ingress %s to the next of %d Services (a new backend); %d reload failures; passes: %s (mean phases: %s); at most %.0f old HAProxy workers alive (sampled each second); counted from /metrics, HAProxy's master counted %d reloads (show proc); %s",
		rate, driven.Round(time.Second), set.rate, changes, flipIngress, flipServices, reloadFailures, strings.Join(outcomes, ", "), strings.Join(phases, ", "), maxOld,
		procsAfter.Reloads-procsBefore.Reloads, cmd)
	r.rows = append(r.rows, Row{Figure: "reload soak: reloads done", N: n, HAProxy: r.version, Variant: r.variant,
		Samples: int(reloads), Notes: reloadNotes})
	b.Logf("soak: %s", reloadNotes)
	b.Logf("access log lines relayed by the sidecar (not kept): %d", s.AccessLogLines())
	if reloadFailures > 0 {
		b.Errorf("%d reloads failed", reloadFailures)
	}
}

// patchFlip points Ingress soak-flip at the k-th flip Service (a merge
// patch of its rules: no conflict with status updates).
func patchFlip(r *run, k int) error {
	rules := NewIngress(flipIngress, flipHost, flipService(k), false).Spec.Rules
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"rules": rules}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.client.NetworkingV1().Ingresses(Namespace).Patch(ctx, flipIngress, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// showProc is HAProxy's master's view (it does not answer while it
// re-executes itself for a reload: asked again for up to 10 s).
func showProc(b *testing.B, s *Sidecar) reload.ProcStatus {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := reload.NewMasterCLI(s.Socket).ShowProc(ctx)
		cancel()
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("show proc: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metrics is the sidecar's /metrics now.
func (r *run) metrics() map[string]float64 {
	m, err := r.sidecar.Metrics()
	if err != nil {
		r.b.Fatalf("sidecar /metrics: %v", err)
	}
	return m
}

// benchCmd is the command that runs one part alone, for the notes.
func benchCmd(env ...string) string {
	return "`" + strings.Join(env, " ") + " go test -count=1 -timeout 60m -run '^$' -bench Cluster -benchtime 1x ./e2e/bench/`"
}
