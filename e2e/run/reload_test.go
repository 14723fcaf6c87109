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

// Reload spacing: a change that needs a reload right after another
// reload is not held back by --min-reload-interval while at most one old
// worker is still finishing (the one that reload replaced), and is when
// two are. Then
// a storm of such changes (a backend annotation's value, back to back)
// under load, with a request held open on every worker so that old
// workers pile up: one reload at once, one per spacing while the changes
// last, then the last; the final state served and no request failed.
func TestReloadStorm(t *testing.T) {
	const changes, spacing = 300, time.Second
	forEachHAProxy(t, func(t *testing.T, bin string) {
		a := startEcho(t, "a")
		s := startSidecar(t, sidecartest.Options{HAProxy: bin, MinReloadInterval: spacing})
		s.Write("class.yaml", ingressClass)
		s.Write("a.yaml", app("a", a))
		withTimeout := func(i int) string {
			return annotated(ingress("ing", "storm.test", "/", "a"), "haproxy-sidecar.io/timeout-server", fmt.Sprintf("%dms", 20001+i))
		}
		served := func(i int) time.Duration {
			t.Helper()
			start := time.Now()
			s.Write("ing.yaml", withTimeout(i))
			want := fmt.Sprintf("timeout server %dms", 20001+i)
			s.Eventually(30*time.Second, want+" live", func() error {
				if !strings.Contains(s.liveConfig(), want) {
					return fmt.Errorf("%q not live", want)
				}
				return nil
			})
			return time.Since(start)
		}
		noOldWorker := func() {
			s.Eventually(10*time.Second, "no old worker", func() error {
				if n := len(s.Procs().OldWorkers); n > 0 {
					return fmt.Errorf("%d old workers", n)
				}
				return nil
			})
		}
		served(0)
		s.Expect("storm.test", "/", "svc:a")
		noOldWorker()
		served(1)
		if d := served(2); d > spacing/2 {
			t.Errorf("a reload right after another, with at most its one old worker left, took %s: held back by the spacing (%s)", d, spacing)
		}
		// A request held open on two workers in turn: each reload
		// leaves one more old worker finishing its request.
		for i := 3; i <= 4; i++ {
			go sidecartest.Get(s.HTTPPort, "storm.test", "/hold")
			<-a.held
			served(i)
		}
		if n := len(s.Procs().OldWorkers); n < 2 {
			t.Fatalf("%d old workers finishing held requests, want 2", n)
		}
		if d := served(5); d < spacing/2 {
			t.Errorf("a reload right after another, with two old workers still finishing requests, took %s: not spaced (%s)", d, spacing)
		}

		poller := sidecartest.StartPoller(t, s.HTTPPort, "storm.test", "/", "svc:a")
		// A request held open on every worker (a new one every 20 ms).
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
		base := s.Procs().Reloads
		start := time.Now()
		for i := 6; i < 6+changes; i++ {
			s.Write("ing.yaml", withTimeout(i))
			time.Sleep(2 * time.Millisecond)
		}
		wrote := time.Since(start)
		last := fmt.Sprintf("timeout server %dms", 20001+5+changes)
		s.Eventually(30*time.Second, "the final state served", func() error {
			if !strings.Contains(s.liveConfig(), last) {
				return fmt.Errorf("%q not live", last)
			}
			return nil
		})
		reloads := s.Procs().Reloads - base
		maxOld := len(s.Procs().OldWorkers)
		close(done)
		held.Wait()
		a.release()
		t.Logf("%d changes written in %s: %d reloads, %d old workers after", changes, wrote.Round(time.Millisecond), reloads, maxOld)
		if maxOld == 0 {
			t.Error("no old worker was finishing a held request: the spacing was not exercised")
		}
		// One reload at once (the spacing since the last one has
		// passed), one per spacing while the changes keep coming, then
		// the last.
		if limit := 2 + int(wrote/spacing); reloads > limit {
			t.Errorf("%d reloads for %d changes in %s while old workers piled up, want at most %d", reloads, changes, wrote, limit)
		}
		poller.ExpectNone(t, "the reload storm")
	})
}
