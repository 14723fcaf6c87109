package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

// Reload storm: changes that each need a reload (a backend annotation's
// value), made back to back, under load. Without long-lived connections
// every old worker is gone by the time a reload is done, so reloads are
// not spaced at all; with them, old workers pile up and reloads are
// spaced by --min-reload-interval and more (one at once, one per spacing
// while the changes last, then the last). Either way the final state is
// served and no request fails. With the default flags: the guarantee
// holds without tuning.
func TestReloadStorm(t *testing.T) {
	const changes = 300
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: -1})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a))
		withTimeout := func(i int) string {
			return annotated(ingress("ing", "storm.test", "/", "a"), "haproxy-sidecar.io/timeout-server", fmt.Sprintf("%dms", 10000+i))
		}
		s.Write("ing.yaml", withTimeout(0))
		s.Expect("storm.test", "/", "svc:a")
		poller := sidecartest.StartPoller(t, s.HTTPPort, "storm.test", "/", "svc:a")

		storm := func(from int) (reloads int, wrote time.Duration) {
			t.Helper()
			base := s.Procs().Reloads
			start := time.Now()
			for i := from; i < from+changes; i++ {
				s.Write("ing.yaml", withTimeout(i))
				time.Sleep(2 * time.Millisecond)
			}
			wrote = time.Since(start)
			last := fmt.Sprintf("timeout server %dms", 10000+from+changes-1)
			s.Eventually(30*time.Second, "the final state served", func() error {
				if !strings.Contains(s.liveConfig(), last) {
					return fmt.Errorf("%q not live", last)
				}
				return nil
			})
			return s.Procs().Reloads - base, wrote
		}
		// The bound spacing sets: one reload at once, one per
		// --min-reload-interval (500ms by default) while the changes
		// keep coming, then the last.
		spaced := func(wrote time.Duration) int { return 2 + int(wrote/(500*time.Millisecond)) }

		time.Sleep(200 * time.Millisecond) // the first reload's old worker
		reloads, wrote := storm(1)
		t.Logf("no long-lived connections: %d changes written in %s, %d reloads", changes, wrote.Round(time.Millisecond), reloads)
		if reloads <= spaced(wrote) {
			t.Errorf("%d reloads for %d changes in %s without long-lived connections: spaced as if old workers piled up (at most %d)",
				reloads, changes, wrote, spaced(wrote))
		}

		// Long-lived connections: a request held open on every worker
		// (a new one every 20 ms), so that each reload leaves one more
		// old worker finishing it.
		done := make(chan struct{})
		var held sync.WaitGroup
		held.Add(1)
		go func() {
			defer held.Done()
			for {
				select {
				case <-done:
					return
				case <-a.held:
				case <-time.After(20 * time.Millisecond):
					go sidecartest.Get(s.HTTPPort, "storm.test", "/hold")
				}
			}
		}()
		reloads, wrote = storm(1 + changes)
		maxOld := 0
		for range 10 {
			maxOld = max(maxOld, len(s.Procs().OldWorkers))
			time.Sleep(10 * time.Millisecond)
		}
		close(done)
		held.Wait()
		a.release()
		t.Logf("long-lived connections: %d changes written in %s, %d reloads, %d old workers after", changes, wrote.Round(time.Millisecond), reloads, maxOld)
		if maxOld == 0 {
			t.Error("no old worker was finishing a held request: the spacing was not exercised")
		}
		if reloads > spaced(wrote) {
			t.Errorf("%d reloads for %d changes in %s while old workers piled up, want at most %d", reloads, changes, wrote, spaced(wrote))
		}
		poller.ExpectNone(t, "reload storms")
	})
}
