package reload

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// processesOf lists the running HAProxy processes (masters and workers)
// whose command line names config, read from /proc: what a Process leaves
// behind, whoever its parent is.
func processesOf(config string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args, err := cmdline(pid)
		if err != nil || len(args) == 0 || filepath.Base(args[0]) != "haproxy" || argsConfig(args) != config {
			continue
		}
		if running(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processFixture is a configuration in a short temporary directory whose
// HAProxy answers Host a.example with "route=a1" on port.
type processFixture struct {
	dir, config, socket string
	port                int
}

func newProcessFixture(t *testing.T) processFixture {
	t.Helper()
	dir := shortTempDir(t)
	port := freePort(t)
	writeFiles(t, dir, Files{"haproxy.cfg": []byte(routeConfig(port, "1")), "maps/exact.map": []byte("a.example a1\n")})
	return processFixture{dir: dir, config: filepath.Join(dir, ConfigName), socket: filepath.Join(dir, "m.sock"), port: port}
}

func (fx processFixture) options(t *testing.T, hb haproxyBin) ProcessOptions {
	return ProcessOptions{Start: true, Bin: hb.path, Config: fx.config, Socket: fx.socket,
		StopGrace: 2 * time.Second, StartTimeout: 10 * time.Second, SocketWait: 10 * time.Second,
		Log: zaptest.NewLogger(t)}
}

// startLeftover starts an HAProxy master as a sidecar that was since
// killed would have left it: not a child of any Process. Its exit is
// collected in the background, so it leaves no zombie.
func startLeftover(t *testing.T, hb haproxyBin, config, socket string) int {
	t.Helper()
	cmd := exec.Command(hb.path, "-W", "-S", socket, "-f", config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	})
	cli := &MasterCLI{Socket: socket, Timeout: time.Second}
	eventually(t, "the leftover HAProxy's worker", func() bool {
		st, err := cli.ShowProc(context.Background())
		return err == nil && st.Master.PID == pid && st.CurrentWorker() != 0
	})
	return pid
}

func waitProcess(t *testing.T, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func showProc(t *testing.T, socket string) ProcStatus {
	t.Helper()
	st, err := NewMasterCLI(socket).ShowProc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A Process with Start starts HAProxy, restarts it when its master is
// killed (OnRestart says so, and the Conn reaches the new master), replaces
// a master through its Conn's RestartStuck, and stops it leaving no
// process.
func TestProcessStartRestartStop(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		fx := newProcessFixture(t)
		var restarts atomic.Int32
		opts := fx.options(t, hb)
		opts.OnRestart = func() { restarts.Add(1) }
		p := NewProcess(opts)
		if p.Up() {
			t.Fatal("Up before Start")
		}
		p.Start()
		t.Cleanup(func() {
			_ = p.Stop()
			for _, pid := range processesOf(fx.config) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
		waitProcess(t, p)
		if !p.Up() || p.Ready() != nil {
			t.Fatalf("after Wait: Up %v, Ready %v", p.Up(), p.Ready())
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a1" {
			t.Fatalf("after start: %q", got)
		}
		first := showProc(t, fx.socket)

		// The master is killed: a new one is started, and the Conn's
		// reload reaches it (it waits until the new master answers).
		if err := syscall.Kill(first.Master.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "OnRestart", func() bool { return restarts.Load() == 1 })
		writeFiles(t, fx.dir, Files{"maps/exact.map": []byte("a.example a2\n")})
		if _, err := p.Conn().Reload(ctx); err != nil {
			t.Fatalf("reload after the restart: %v", err)
		}
		second := showProc(t, fx.socket)
		if second.Master.PID == first.Master.PID {
			t.Fatalf("master %d still answers after it was killed", first.Master.PID)
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a2" {
			t.Fatalf("after the restart and a reload: %q", got)
		}
		eventually(t, "the killed master's worker exit", func() bool { return !running(first.CurrentWorker()) })

		// Runtime commands go through the Conn too.
		var b Batch
		b.SetMap("maps/exact.map", "a.example", "a3")
		if err := p.Conn().Send(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a3" {
			t.Fatalf("after a runtime update: %q", got)
		}

		// A stuck master is replaced through the Conn (here one that is
		// not stuck: the replacement is the same).
		r, ok := p.Conn().(interface{ RestartStuck(int) error })
		if !ok {
			t.Fatalf("the Conn of a supervised HAProxy (%T) cannot restart a stuck master", p.Conn())
		}
		if err := r.RestartStuck(second.Master.PID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the replaced master gone", func() bool { return !running(second.Master.PID) })
		waitProcess(t, p)
		if restarts.Load() != 2 {
			t.Errorf("OnRestart called %d times after a restart and a replacement, want 2", restarts.Load())
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a2" {
			t.Fatalf("after the replacement (map file a2 on disk): %q", got)
		}

		// Stop: nothing of it is left, and a second Stop is harmless.
		third := showProc(t, fx.socket)
		if err := p.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if left := processesOf(fx.config); len(left) > 0 {
			t.Errorf("processes left after Stop: %v (master was %d, worker %d)", left, third.Master.PID, third.CurrentWorker())
		}
		if err := p.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
}

// A Process with Start finds an HAProxy left answering on its socket with
// its configuration (by a sidecar that was killed) and adopts it: no second
// master, no OnRestart, reloads and Stop reach it, and Stop leaves no
// process. An HAProxy with another configuration is neither adopted nor
// doubled: Wait says so.
func TestProcessAdoptsRunningMaster(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		fx := newProcessFixture(t)
		master := startLeftover(t, hb, fx.config, fx.socket)
		before := showProc(t, fx.socket)

		// Another configuration on the same socket.
		other := filepath.Join(fx.dir, "other.cfg")
		if err := os.WriteFile(other, []byte(routeConfig(freePort(t), "2")), 0o644); err != nil {
			t.Fatal(err)
		}
		fopts := fx.options(t, hb)
		fopts.Config = other
		foreign := NewProcess(fopts)
		foreign.Start()
		err := foreign.Wait(ctx)
		var fe *ForeignHAProxyError
		if !errors.As(err, &fe) || fe.PID != master {
			t.Fatalf("a Process of another configuration: Wait %v; want a ForeignHAProxyError naming %d", err, master)
		}
		if left := processesOf(other); len(left) > 0 {
			t.Fatalf("an HAProxy of the other configuration was started beside the running one: %v", left)
		}

		var restarts atomic.Int32
		opts := fx.options(t, hb)
		opts.OnRestart = func() { restarts.Add(1) }
		p := NewProcess(opts)
		p.Start()
		t.Cleanup(func() { _ = p.Stop() })
		waitProcess(t, p)
		if st := showProc(t, fx.socket); st.Master.PID != master {
			t.Fatalf("master %d answers, want the running one (%d) adopted", st.Master.PID, master)
		}
		if got := processesOf(fx.config); !slices.Equal(sorted(got), sorted([]int{master, before.CurrentWorker()})) {
			t.Fatalf("processes after adoption %v, want the master %d and its worker %d only", got, master, before.CurrentWorker())
		}
		if restarts.Load() != 0 {
			t.Errorf("OnRestart called %d times for an adoption", restarts.Load())
		}
		writeFiles(t, fx.dir, Files{"maps/exact.map": []byte("a.example a2\n")})
		if _, err := p.Conn().Reload(ctx); err != nil {
			t.Fatalf("reload of the adopted master: %v", err)
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a2" {
			t.Fatalf("after reloading the adopted master: %q", got)
		}
		if err := p.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if left := processesOf(fx.config); len(left) > 0 {
			t.Errorf("processes left after stopping the adopted HAProxy: %v", left)
		}
	})
}

// Without Start, HAProxy is another container's: Wait waits for its master
// socket (and gives up after SocketWait), the Conn reloads it but cannot
// restart it, and Stop leaves it running.
func TestProcessStartedElsewhere(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, hb haproxyBin) {
		ctx := context.Background()
		fx := newProcessFixture(t)
		opts := fx.options(t, hb)
		opts.Start = false

		short := opts
		short.SocketWait = 300 * time.Millisecond
		if err := NewProcess(short).Wait(ctx); err == nil || !strings.Contains(err.Error(), "did not appear within 300ms") {
			t.Fatalf("Wait without HAProxy: %v; want the socket wait to expire", err)
		}

		p := NewProcess(opts)
		p.Start()
		if p.Up() {
			t.Fatal("Up before the master socket exists")
		}
		waited := make(chan error, 1)
		go func() { waited <- p.Wait(ctx) }()
		time.Sleep(200 * time.Millisecond)
		select {
		case err := <-waited:
			t.Fatalf("Wait returned before HAProxy started: %v", err)
		default:
		}
		master := startLeftover(t, hb, fx.config, fx.socket)
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not return once the master socket existed")
		}
		if !p.Up() || p.Ready() != nil {
			t.Fatalf("Up %v, Ready %v", p.Up(), p.Ready())
		}
		if _, ok := p.Conn().(interface{ RestartStuck(int) error }); ok {
			t.Fatalf("the Conn of an HAProxy another container runs (%T) claims it can restart it", p.Conn())
		}
		writeFiles(t, fx.dir, Files{"maps/exact.map": []byte("a.example a2\n")})
		if _, err := p.Conn().Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got := get(t, fx.port, "a.example"); field(got, "route") != "a2" {
			t.Fatalf("after a reload: %q", got)
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		if !running(master) {
			t.Fatal("Stop ended an HAProxy another container started")
		}
	})
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
