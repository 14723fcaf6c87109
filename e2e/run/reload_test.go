package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// loadGenerator sends requests to HAProxy on loopback from several
// goroutines, half over new connections and half over keep-alive ones,
// until stopped or until its bounds (count, time) are reached.
type loadGenerator struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

const (
	loadWorkers     = 4
	loadMaxRequests = 200000
	loadMaxDuration = 3 * time.Minute
)

func startLoad(port int, host string, want ...string) *loadGenerator {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	g := &loadGenerator{stop: cancel}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	for i := range loadWorkers {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: i%2 == 0}}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for ctx.Err() == nil && g.ok.Load()+g.failed.Load() < loadMaxRequests {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return // stopped mid-request: not a failure
					}
					g.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !slices.Contains(want, string(body)) {
					g.fail(fmt.Sprintf("status %d body %q err %v", resp.StatusCode, body, err))
					continue
				}
				g.ok.Add(1)
			}
		}()
	}
	return g
}

func (g *loadGenerator) fail(msg string) {
	g.failed.Add(1)
	g.mu.Lock()
	if len(g.errs) < 10 {
		g.errs = append(g.errs, msg)
	}
	g.mu.Unlock()
}

func (g *loadGenerator) finish() (ok, failed int64, errs []string) {
	g.stop()
	g.wg.Wait()
	return g.ok.Load(), g.failed.Load(), g.errs
}

// Zero-downtime: requests keep flowing while 50 reloads are forced, and
// none fails. Listening sockets pass from each worker to the next.
func TestZeroDowntimeReloads(t *testing.T) {
	const reloads = 50
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a, b := startEcho(t, "a"), startEcho(t, "b")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: time.Millisecond})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a)+"---\n"+ingress("a", "a.test", "/", "a"))
		s.Expect("a.test", "/", "svc:a")
		waitNoOldWorkers(s)

		load := startLoad(s.HTTPPort, "a.test", "svc:a")
		base := s.Procs().Reloads
		for i := 1; i <= reloads; i++ {
			// A new Service backend each time: only a reload can add it.
			name := "extra" + strconv.Itoa(i)
			s.Write("extra.yaml", app(name, b)+"---\n"+ingress("extra", "extra.test", "/", name))
			s.Eventually(10*time.Second, fmt.Sprintf("reload %d", i), func() error {
				st, err := s.TryProcs()
				if err != nil {
					return err
				}
				if st.Reloads < base+i {
					return fmt.Errorf("reloads %d", st.Reloads-base)
				}
				return nil
			})
		}
		ok, failed, errs := load.finish()
		t.Logf("%d reloads under load: %d requests succeeded, %d failed", reloads, ok, failed)
		if failed > 0 {
			t.Errorf("%d requests failed across %d reloads, e.g. %q", failed, reloads, errs)
		}
		if ok < 1000 {
			t.Errorf("only %d requests went through: the load did not overlap the reloads", ok)
		}
		s.Expect("extra.test", "/", "svc:b")
	})
}

func waitNoOldWorkers(s *sidecar) {
	s.T.Helper()
	s.Eventually(10*time.Second, "old workers gone", func() error {
		st, err := s.TryProcs()
		if err != nil {
			return err
		}
		if n := len(st.OldWorkers); n > 0 {
			return errors.New(strconv.Itoa(n) + " old workers")
		}
		return nil
	})
}

// Reload storm: 1000 changes that each need a reload, made within about a
// second, end in a handful of reloads and the final state served. With the
// default flags: the guarantee holds without tuning.
func TestReloadStorm(t *testing.T) {
	const changes = 1000
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: -1})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a))
		s.Write("ing.yaml", ingress("ing", "storm.test", "/", "a"))
		s.Expect("storm.test", "/", "svc:a")
		base := s.Procs().Reloads
		renders := s.LogCount("reloaded HAProxy") + s.LogCount("updated HAProxy at run time")

		start := time.Now()
		for i := 1; i <= changes; i++ {
			// Each change moves the route to a new Service: a new backend.
			name := "s" + strconv.Itoa(i)
			s.Write("a.yaml", app(name, a))
			s.Write("ing.yaml", ingress("ing", "storm.test", "/", name, "/n", name))
		}
		wrote := time.Since(start)
		final := "s" + strconv.Itoa(changes)
		s.Eventually(30*time.Second, "the final state served", func() error {
			got, err := s.Get("storm.test", "/n")
			if err != nil {
				return err
			}
			cfg := s.liveConfig()
			if got != "svc:a" || !containsLine(cfg, "backend default_"+final+"_80") {
				return fmt.Errorf("got %s; final backend live: %v", got, containsLine(cfg, "backend default_"+final+"_80"))
			}
			return nil
		})
		took := time.Since(start)
		reloadsDone := s.Procs().Reloads - base
		applied := s.LogCount("reloaded HAProxy") + s.LogCount("updated HAProxy at run time") - renders
		t.Logf("%d changes written in %s; final state served after %s with %d reloads (%d applied passes)",
			2*changes, wrote.Round(time.Millisecond), took.Round(time.Millisecond), reloadsDone, applied)
		if wrote > 5*time.Second {
			t.Logf("writing the changes took %s: the machine is slow, the storm was spread out", wrote)
		}
		// One reload at once, then one per --min-reload-interval (500ms
		// by default) while the changes keep coming, then the last one:
		// three for a storm of under a second.
		if limit := 2 + int(wrote/(500*time.Millisecond)); reloadsDone > limit {
			t.Errorf("%d reloads for %d changes in %s, want at most %d", reloadsDone, 2*changes, wrote, limit)
		}
	})
}
