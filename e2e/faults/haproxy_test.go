package faults

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// HAProxy's own outage: killed HAProxy processes can serve nothing until
// the supervisor has started a new master, which takes its backoff (200 ms)
// plus HAProxy's start-up: about 0.4 s here. The limit is several times
// that, because the machine is shared.
const haproxyRestartOutage = 3 * time.Second

// kill -9 of HAProxy's master and its workers, as a crashed container:
// the supervisor starts HAProxy again on the last good configuration.
// Failures allowed: only while no HAProxy runs (at most
// haproxyRestartOutage).
func TestKillHAProxyMaster(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		p := poll(t, s)
		time.Sleep(300 * time.Millisecond)
		before := s.Procs()
		syscall.Kill(before.Master.PID, syscall.SIGKILL)
		for _, w := range append(before.Workers, before.OldWorkers...) {
			syscall.Kill(w.PID, syscall.SIGKILL)
		}
		waitNewMaster(t, s, before.Master.PID)
		s.Expect("a.test", "/", "svc:a")
		time.Sleep(300 * time.Millisecond)
		p.ExpectOutageAtMost(t, haproxyRestartOutage, "HAProxy was killed; nothing serves until it is started again")
		// Still following changes.
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
	})
}

// kill -9 of the current worker only: HAProxy's master exits when its
// worker dies (or starts a new one), and the supervisor brings it back.
// Failures allowed: only while no worker runs (at most
// haproxyRestartOutage).
func TestKillHAProxyWorker(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s, _ := serving(t, bin)
		p := poll(t, s)
		time.Sleep(300 * time.Millisecond)
		before := s.Procs()
		syscall.Kill(before.CurrentWorker(), syscall.SIGKILL)
		s.Eventually(20*time.Second, "a new worker", func() error {
			now, err := s.TryProcs()
			if err != nil {
				return err
			}
			if now.CurrentWorker() == 0 || now.CurrentWorker() == before.CurrentWorker() {
				return fmt.Errorf("worker %d", now.CurrentWorker())
			}
			return nil
		})
		s.Expect("a.test", "/", "svc:a")
		time.Sleep(300 * time.Millisecond)
		p.ExpectOutageAtMost(t, haproxyRestartOutage, "HAProxy's worker was killed; nothing serves until a new one runs")
		s.Write("b.yaml", ingress("b", "b.test", "/", "a"))
		s.Expect("b.test", "/", "svc:a")
	})
}

// waitNewMaster waits until HAProxy's master socket answers from a master
// other than old, with a worker.
func waitNewMaster(t *testing.T, s *sidecar, old int) {
	t.Helper()
	s.Eventually(20*time.Second, "a new HAProxy master", func() error {
		now, err := s.TryProcs()
		if err != nil {
			return err
		}
		if now.Master.PID == old || now.CurrentWorker() == 0 {
			return fmt.Errorf("master %d, worker %d", now.Master.PID, now.CurrentWorker())
		}
		return nil
	})
}
