package kube

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Addresses inside the test network namespace. They come from 198.18.0.0/15
// (RFC 2544 benchmarking), which is never routed on the internet, and they
// exist only on the namespace's own veth: with no default route there, a
// packet to any other non-loopback address fails with "network unreachable"
// instead of leaving the machine.
const (
	// NodeIP is the namespace's primary address (198.18.0.0/24 on v0). The
	// API server advertises it, because it needs a non-loopback address and
	// the namespace has no default route to pick one from.
	NodeIP = "198.18.0.1"
	// NumBackendIPs is how many extra /32 addresses BackendIP can return.
	NumBackendIPs = 16

	firstBackendOctet = 10
	netnsPrefix       = "hsc-e2e-"
	// envNetns marks a process that RunInNetns already re-executed inside
	// the namespace; its value is the namespace name.
	envNetns    = "HAPROXY_SIDECAR_E2E_NETNS"
	installHint = "run scripts/install-kube.sh as root"
)

// BackendIP returns the i-th address (0 <= i < NumBackendIPs) reserved for
// backends such as echo servers; EndpointSlices may use it as an endpoint.
func BackendIP(i int) string {
	if i < 0 || i >= NumBackendIPs {
		panic(fmt.Sprintf("kube.BackendIP(%d): index out of range [0,%d)", i, NumBackendIPs))
	}
	return fmt.Sprintf("198.18.0.%d", firstBackendOctet+i)
}

// CurrentNetns returns the name of the test network namespace when the
// calling process runs inside one created by RunInNetns.
func CurrentNetns() (string, bool) {
	name := os.Getenv(envNetns)
	return name, name != ""
}

// RunInNetns is meant for TestMain. Outside the namespace it creates a fresh
// one, re-executes the test binary inside it with the same arguments, deletes
// the namespace when the child ends (whatever the outcome) and returns the
// child's exit code; inside, it simply returns m.Run(). Re-executing is
// needed because setns(2) only moves one OS thread, and a Go process cannot
// move all of its threads, so part of a test would otherwise run outside.
//
//	func TestMain(m *testing.M) { os.Exit(kube.RunInNetns(m)) }
func RunInNetns(m *testing.M) int {
	if _, inside := CurrentNetns(); inside {
		return m.Run()
	}
	code, err := reexecInNetns()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: e2e network namespace: %v\n", err)
		return 1
	}
	return code
}

// reexecInNetns runs the current test binary inside a new namespace and
// returns its exit code.
func reexecInNetns() (code int, err error) {
	if err := checkNetnsPrerequisites(); err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("locate test binary: %w", err)
	}
	removeStaleNetns()
	ns, err := createNetns()
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := ns.destroy(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	// The child's t.TempDir()s go under a directory this process removes,
	// so a child killed before its cleanups ran leaves no etcd data behind.
	tmp, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		return 0, fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	args := append([]string{"netns", "exec", ns.name, self}, os.Args[1:]...)
	cmd := exec.Command("ip", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(withoutProxyEnv(os.Environ()), envNetns+"="+ns.name, "TMPDIR="+tmp)
	// Keep this process alive on Ctrl-C or SIGTERM so the namespace is still
	// deleted; the child gets the signal forwarded and ends the tests.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start test binary in netns %s: %w", ns.name, err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		// A child killed by a signal reports -1; still a failure.
		if c := exitErr.ExitCode(); c > 0 {
			return c, nil
		}
		return 1, nil
	default:
		return 0, fmt.Errorf("wait for test binary in netns %s: %w", ns.name, err)
	}
}

func checkNetnsPrerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("the e2e tests must run as root to create a network namespace " +
			"(prerequisites: scripts/install-kube.sh, also as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2 is missing (%s): %w", installHint, err)
	}
	return nil
}

// netns is a network namespace this process created and must delete.
type netns struct{ name string }

// createNetns makes a namespace with loopback up and a veth pair v0/v1 whose
// both ends stay inside it (the dummy link type is not available on every
// kernel we run on), then puts NodeIP/24 and the backend /32s on v0.
func createNetns() (*netns, error) {
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("random netns suffix: %w", err)
	}
	ns := &netns{name: fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), hex.EncodeToString(suffix))}
	if err := ip("netns", "add", ns.name); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"-n", ns.name, "link", "set", "lo", "up"},
		{"-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"-n", ns.name, "addr", "add", NodeIP + "/24", "dev", "v0"},
	}
	for i := 0; i < NumBackendIPs; i++ {
		steps = append(steps, []string{"-n", ns.name, "addr", "add", BackendIP(i) + "/32", "dev", "v0"})
	}
	steps = append(steps,
		[]string{"-n", ns.name, "link", "set", "v0", "up"},
		[]string{"-n", ns.name, "link", "set", "v1", "up"},
	)
	for _, s := range steps {
		if err := ip(s...); err != nil {
			_ = ns.destroy()
			return nil, fmt.Errorf("set up netns %s: %w", ns.name, err)
		}
	}
	return ns, nil
}

// destroy kills whatever still runs in the namespace and deletes it. Every
// process in it was started by this test run, and Pdeathsig does not cover a
// child whose parent thread outlived a crash of the test, so leftovers (an
// etcd, say) are killed by PID here rather than left holding the namespace.
func (ns *netns) destroy() error {
	out, err := exec.Command("ip", "netns", "pids", ns.name).Output()
	if err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, perr := strconv.Atoi(f); perr == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := ip("netns", "delete", ns.name); err != nil {
		return fmt.Errorf("delete netns %s: %w", ns.name, err)
	}
	return nil
}

// removeStaleNetns deletes namespaces left behind by earlier runs whose
// creating process no longer exists (e.g. after SIGKILL), so they do not pile
// up on CI machines. Namespaces of live runs are left alone.
func removeStaleNetns() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], netnsPrefix) {
			continue
		}
		name := fields[0]
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, netnsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue
		}
		_ = (&netns{name: name}).destroy()
	}
}

// ip runs one iproute2 command and includes its output in the error.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// withoutProxyEnv drops HTTP proxy settings. Inside the namespace a proxy is
// unreachable anyway; dropping them keeps clients from even trying one and
// makes "no traffic leaves the namespace" hold by construction.
func withoutProxyEnv(env []string) []string {
	kept := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		kept = append(kept, kv)
	}
	return kept
}
