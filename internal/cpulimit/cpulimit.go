// Package cpulimit finds how many CPUs HAProxy may use, so that its thread
// count (nbthread) follows the container's CPU limit instead of the node's
// cores: HAProxy alone starts one thread per CPU it may be scheduled on,
// 64 on a 64-core node, even when its cgroup lets it use two. Threads that
// a CFS quota throttles add latency and memory and serve nothing more.
//
// Two sources, in the order Threads uses them:
//
//   - the Downward API: the HAProxy container's limits.cpu, given to the
//     sidecar in an environment variable (deploy/ sets HAPROXY_CPU_LIMIT).
//     In the pod HAProxy runs in its own container, so this is the only
//     honest source: the sidecar's cgroup is the sidecar's.
//   - the process's own cgroup (v2 cpu.max, v1 cpu.cfs_quota_us and
//     cpu.cfs_period_us), right when HAProxy is the sidecar's child in the
//     same container (run --haproxy-start).
package cpulimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// MaxThreads is the most threads HAProxy 2.6 runs (one thread group of
// 64); 3.0 needs thread-groups for more, which the template does not
// write.
const MaxThreads = 64

// Limit is a CPU limit in cores (1.5 for a quota of 150000 per 100000 µs).
// Zero means none.
type Limit float64

// Threads is the thread count for a limit: the limit rounded up, at least
// 1 and at most numCPU (the CPUs the process may run on) and MaxThreads.
// Zero when there is no limit: HAProxy's own default applies.
func (l Limit) Threads(numCPU int) int {
	if l <= 0 {
		return 0
	}
	n := int(math.Ceil(float64(l) - 1e-9))
	return max(1, min(n, numCPU, MaxThreads))
}

// ParseDownward reads a limits.cpu value as the Downward API writes it
// (resourceFieldRef): with divisor 1 a whole number of cores, rounded up
// by the kubelet ("2"); with divisor 1m millicores ("1500"), which is what
// the divisor says and this cannot know, so the variable holds cores and
// any Kubernetes quantity is accepted ("1500m", "0.5").
func ParseDownward(s string) (Limit, error) {
	q, err := resource.ParseQuantity(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("CPU limit %q: %w", s, err)
	}
	if q.Sign() <= 0 {
		return 0, fmt.Errorf("CPU limit %q: not positive", s)
	}
	return Limit(float64(q.MilliValue()) / 1000), nil
}

// ParseCPUMax reads cgroup v2's cpu.max: "max 100000" (no limit) or
// "QUOTA PERIOD" in microseconds.
func ParseCPUMax(s string) (Limit, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("cpu.max %q: want \"QUOTA PERIOD\"", s)
	}
	if f[0] == "max" {
		return 0, nil
	}
	return quota(f[0], f[1])
}

// ParseCFS reads cgroup v1's cpu.cfs_quota_us ("-1": no limit) and
// cpu.cfs_period_us.
func ParseCFS(quotaUS, periodUS string) (Limit, error) {
	if strings.TrimSpace(quotaUS) == "-1" {
		return 0, nil
	}
	return quota(quotaUS, periodUS)
}

func quota(q, p string) (Limit, error) {
	qv, err := strconv.ParseInt(strings.TrimSpace(q), 10, 64)
	if err != nil || qv <= 0 {
		return 0, fmt.Errorf("CPU quota %q: want a positive number of microseconds", q)
	}
	pv, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
	if err != nil || pv <= 0 {
		return 0, fmt.Errorf("CPU period %q: want a positive number of microseconds", p)
	}
	return Limit(float64(qv) / float64(pv)), nil
}

// Cgroup reads the CPU limit of the process's own cgroup from root (the
// file system's root: os.DirFS("/")): its path in /proc/self/cgroup, under
// /sys/fs/cgroup (v2) or the cpu controller's mount (v1). In a container
// with its own cgroup namespace that path is "/", and the files are at the
// mount's top, where this looks last. Zero without a limit or without
// cgroup files; an error only for files that exist and do not parse.
// Limits of parent cgroups are not read.
func Cgroup(root fs.FS) (Limit, error) {
	self, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		self = nil // no /proc: only the mount's top is looked at
	}
	v2, v1 := cgroupPaths(self)
	// v2 (unified): one hierarchy.
	for _, dir := range candidates("sys/fs/cgroup", v2) {
		b, err := fs.ReadFile(root, path.Join(dir, "cpu.max"))
		if err == nil {
			return ParseCPUMax(string(b))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("reading %s: %w", path.Join(dir, "cpu.max"), err)
		}
	}
	// v1: the cpu controller, mounted alone or with cpuacct.
	for _, mount := range []string{"sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpuacct,cpu"} {
		for _, dir := range candidates(mount, v1) {
			q, err := fs.ReadFile(root, path.Join(dir, "cpu.cfs_quota_us"))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("reading %s: %w", path.Join(dir, "cpu.cfs_quota_us"), err)
			}
			p, err := fs.ReadFile(root, path.Join(dir, "cpu.cfs_period_us"))
			if err != nil {
				return 0, fmt.Errorf("reading %s: %w", path.Join(dir, "cpu.cfs_period_us"), err)
			}
			return ParseCFS(string(q), string(p))
		}
	}
	return 0, nil
}

// cgroupPaths reads /proc/self/cgroup: the v2 path ("0::/path") and the
// v1 cpu controller's ("N:cpu,cpuacct:/path").
func cgroupPaths(b []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && ctrls == "" {
			v2 = p
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "cpu" {
				v1 = p
			}
		}
	}
	return v2, v1
}

// candidates are the directories to look in: the cgroup's own path under
// the mount, then the mount's top.
func candidates(mount, p string) []string {
	p = path.Clean("/" + p)
	if p == "/" {
		return []string{mount}
	}
	return []string{path.Join(mount, p), mount}
}

// EnvVar is the environment variable deploy/ sets from the HAProxy
// container's limits.cpu (resourceFieldRef, divisor 1).
const EnvVar = "HAPROXY_CPU_LIMIT"

// Choice is a thread count and where it came from, for the log.
type Choice struct {
	// Threads is nbthread; 0 leaves HAProxy's default (one per CPU).
	Threads int
	// Source says why: "--haproxy-threads", "HAPROXY_CPU_LIMIT=2",
	// "cgroup", or why there is none.
	Source string
}

// Choose picks HAProxy's thread count: explicit (--haproxy-threads) when
// positive; else the Downward API's value env (EnvVar) when set; else,
// when HAProxy runs in this process's container (sameCgroup, run
// --haproxy-start), this cgroup's limit. HAProxy in another container
// without env: none, since the sidecar's own limit is not HAProxy's.
func Choose(explicit int, env string, sameCgroup bool, root fs.FS, numCPU int) (Choice, error) {
	switch {
	case explicit < 0 || explicit > MaxThreads:
		return Choice{}, fmt.Errorf("--haproxy-threads %d: want 0 (from the CPU limit) to %d", explicit, MaxThreads)
	case explicit > 0:
		return Choice{Threads: explicit, Source: "--haproxy-threads"}, nil
	case strings.TrimSpace(env) != "":
		l, err := ParseDownward(env)
		if err != nil {
			return Choice{}, fmt.Errorf("%s: %w", EnvVar, err)
		}
		return Choice{Threads: l.Threads(numCPU), Source: EnvVar + "=" + strings.TrimSpace(env)}, nil
	case !sameCgroup:
		return Choice{Source: "HAProxy runs in another container and " + EnvVar + " is not set: HAProxy's default"}, nil
	}
	l, err := Cgroup(root)
	if err != nil {
		return Choice{}, fmt.Errorf("cgroup CPU limit: %w", err)
	}
	if l == 0 {
		return Choice{Source: "no cgroup CPU limit: HAProxy's default"}, nil
	}
	return Choice{Threads: l.Threads(numCPU), Source: fmt.Sprintf("cgroup CPU limit %g", float64(l))}, nil
}
