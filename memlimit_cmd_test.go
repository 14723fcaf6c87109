package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// run sets the Go memory limit from the memory limit of the cgroup it
// runs in: the binary, started in a real memory cgroup this test makes
// (v1 or v2, whichever the machine mounts), logs the limit it set.
func TestRunMemoryLimitFromCgroup(t *testing.T) {
	cg := newMemoryCgroup(t, 512<<20)
	bin := sidecartest.Binary(t)

	cases := []struct {
		name     string
		args     []string
		env      []string
		from     string
		bytes    int64 // 0: not logged
		exitCode int   // 1: run failed later (no HAProxy), as wanted
	}{
		{name: "default ratio", from: "the container's memory limit", bytes: 512 << 20 * 9 / 10, exitCode: 1},
		{name: "ratio flag", args: []string{"--memory-limit-ratio", "0.5"}, from: "the container's memory limit", bytes: 256 << 20, exitCode: 1},
		{name: "ratio from the environment", env: []string{"HAPROXY_SIDECAR_MEMORY_LIMIT_RATIO=0.25"}, from: "the container's memory limit", bytes: 128 << 20, exitCode: 1},
		{name: "GOMEMLIMIT wins", env: []string{"GOMEMLIMIT=100MiB"}, from: "GOMEMLIMIT", bytes: 100 << 20, exitCode: 1},
		{name: "off", args: []string{"--memory-limit-ratio", "0"}, from: "--memory-limit-ratio 0: none", exitCode: 1},
		{name: "AUTOMEMLIMIT off", env: []string{"AUTOMEMLIMIT=off"}, from: "AUTOMEMLIMIT=off: none", exitCode: 1},
		{name: "out of range", args: []string{"--memory-limit-ratio", "1.5"}, exitCode: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "manifests"), 0o755); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "--manifests", filepath.Join(dir, "manifests"), "--config-dir", filepath.Join(dir, "config"),
				"--master-socket", filepath.Join(dir, "none.sock"), "--socket-wait", "10ms", "--health-addr", "", "--debug-addr", ""}, c.args...)
			// The shell moves itself into the cgroup, then becomes the
			// sidecar: the sidecar starts inside it.
			cmd := exec.Command("sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(cg, "cgroup.procs"), bin}, args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != c.exitCode {
				t.Fatalf("exit %d, want %d:\n%s", code, c.exitCode, out)
			}
			if c.exitCode == 2 {
				if !strings.Contains(string(out), "--memory-limit-ratio 1.5: must be 0 (off) or in (0, 1]") {
					t.Errorf("the usage error does not name the flag and its range:\n%s", out)
				}
				return
			}
			line, ok := logLine(out, "Go memory limit")
			if !ok {
				t.Fatalf("no \"Go memory limit\" line in the log:\n%s", out)
			}
			if line["from"] != c.from {
				t.Errorf("from = %q, want %q (%v)", line["from"], c.from, line)
			}
			got, _ := line["bytes"].(float64)
			if int64(got) != c.bytes {
				t.Errorf("bytes = %d, want %d (%v)", int64(got), c.bytes, line)
			}
		})
	}
}

// logLine returns the first JSON log line whose msg is msg.
func logLine(out []byte, msg string) (map[string]any, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m, true
		}
	}
	return nil, false
}

// newMemoryCgroup makes a memory cgroup limited to limit bytes under the
// machine's memory controller (cgroup v1's memory hierarchy, or else the
// cgroup v2 root with memory enabled for its children) and removes it
// when the test ends. The test needs root, as the suite does.
func newMemoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	v1, v2 := cgroupMounts(t)
	name := fmt.Sprintf("haproxy-sidecar-test-%d", os.Getpid())
	var dir, file string
	switch {
	case v1 != "":
		dir, file = filepath.Join(v1, name), "memory.limit_in_bytes"
	case v2 != "":
		// Children of the root get the memory controller only when the
		// root's subtree_control names it.
		if err := os.WriteFile(filepath.Join(v2, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
			t.Fatalf("enabling the memory controller for cgroup v2 children: %v", err)
		}
		dir, file = filepath.Join(v2, name), "memory.max"
	default:
		t.Fatal("no memory cgroup controller is mounted (neither a cgroup v1 memory hierarchy nor cgroup2)")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test's cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(fmt.Sprint(limit)), 0o644); err != nil {
		t.Fatalf("setting the cgroup's memory limit: %v", err)
	}
	return dir
}

// cgroupMounts returns the mount point of cgroup v1's memory hierarchy
// and of cgroup2, from /proc/self/mountinfo ("" for one not mounted).
func cgroupMounts(t *testing.T) (v1, v2 string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || f[3] != "/" {
			continue
		}
		switch {
		case g[0] == "cgroup" && strings.Contains(","+g[2]+",", ",memory,"):
			v1 = f[4]
		case g[0] == "cgroup2" && v2 == "":
			v2 = f[4]
		}
	}
	return v1, v2
}
