package cpulimit

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseDownward(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Limit
		threads int // on a 64-CPU node
		bad     bool
	}{
		{in: "2", want: 2, threads: 2},
		{in: "2\n", want: 2, threads: 2},
		{in: "1", want: 1, threads: 1},
		{in: "1500m", want: 1.5, threads: 2},
		{in: "0.5", want: 0.5, threads: 1},
		{in: "100m", want: 0.1, threads: 1},
		{in: "64", want: 64, threads: 64},
		{in: "96", want: 96, threads: 64},
		{in: "0", bad: true},
		{in: "-1", bad: true},
		{in: "two", bad: true},
		{in: "2 cores", bad: true},
	} {
		got, err := ParseDownward(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseDownward(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDownward(%q) = %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		if n := got.Threads(64); n != c.threads {
			t.Errorf("ParseDownward(%q).Threads(64) = %d, want %d", c.in, n, c.threads)
		}
	}
}

func TestParseCgroupFiles(t *testing.T) {
	for _, c := range []struct {
		name       string
		v2         string // cpu.max
		quota, per string // v1
		want       Limit
		bad        bool
	}{
		{name: "v2 none", v2: "max 100000\n", want: 0},
		{name: "v2 2 CPUs", v2: "200000 100000\n", want: 2},
		{name: "v2 1.5 CPUs", v2: "150000 100000", want: 1.5},
		{name: "v2 short period", v2: "50000 50000", want: 1},
		{name: "v2 one field", v2: "200000", bad: true},
		{name: "v2 garbage", v2: "lots 100000", bad: true},
		{name: "v2 zero period", v2: "100000 0", bad: true},
		{name: "v1 none", quota: "-1\n", per: "100000\n", want: 0},
		{name: "v1 2 CPUs", quota: "200000\n", per: "100000\n", want: 2},
		{name: "v1 0.25 CPU", quota: "25000", per: "100000", want: 0.25},
		{name: "v1 garbage", quota: "x", per: "100000", bad: true},
		{name: "v1 zero quota", quota: "0", per: "100000", bad: true},
	} {
		var got Limit
		var err error
		if c.v2 != "" {
			got, err = ParseCPUMax(c.v2)
		} else {
			got, err = ParseCFS(c.quota, c.per)
		}
		if c.bad != (err != nil) || got != c.want {
			t.Errorf("%s: got %v, %v; want %v (error %v)", c.name, got, err, c.want, c.bad)
		}
	}
}

func TestThreadsBounds(t *testing.T) {
	for _, c := range []struct {
		l      Limit
		numCPU int
		want   int
	}{
		{0, 64, 0},     // no limit: HAProxy's default
		{2, 64, 2},     // the 2-CPU pod on a 64-core node
		{2.01, 64, 3},  // a started CPU is a thread
		{0.1, 64, 1},   // at least one
		{8, 4, 4},      // at most the CPUs it may run on
		{128, 256, 64}, // at most MaxThreads
	} {
		if got := c.l.Threads(c.numCPU); got != c.want {
			t.Errorf("Limit(%v).Threads(%d) = %d, want %d", c.l, c.numCPU, got, c.want)
		}
	}
}

// Cgroup reads the files where a container (cgroup namespace: path "/")
// and a host process (its own path) have them, v2 and v1.
func TestCgroup(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  Limit
		bad   bool
	}{
		{name: "v2 container", want: 2, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"}},
		{name: "v2 host path", want: 1.5, files: map[string]string{
			"proc/self/cgroup": "0::/kubepods.slice/pod1/cri-abc\n",
			"sys/fs/cgroup/kubepods.slice/pod1/cri-abc/cpu.max": "150000 100000\n",
		}},
		{name: "v2 unlimited", want: 0, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}},
		{name: "v1 cpu,cpuacct container", want: 4, files: map[string]string{
			"proc/self/cgroup":                            "12:memory:/\n4:cpu,cpuacct:/\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "400000\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
		}},
		{name: "v1 cpu host path", want: 0.5, files: map[string]string{
			"proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n",
			"sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us":  "50000\n",
			"sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":             "-1\n",
			"sys/fs/cgroup/cpu/cpu.cfs_period_us":            "100000\n",
		}},
		{name: "v1 unlimited", want: 0, files: map[string]string{
			"proc/self/cgroup":                    "4:cpu:/\n",
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
		}},
		{name: "no cgroup files", want: 0, files: map[string]string{"proc/self/cgroup": "0::/\n"}},
		{name: "no proc", want: 3, files: map[string]string{"sys/fs/cgroup/cpu.max": "300000 100000"}},
		{name: "v1 quota without period", bad: true, files: map[string]string{
			"proc/self/cgroup": "4:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000\n"}},
		{name: "v2 unreadable value", bad: true, files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "nonsense\n"}},
	} {
		fsys := fstest.MapFS{}
		for p, data := range c.files {
			fsys[p] = &fstest.MapFile{Data: []byte(data)}
		}
		got, err := Cgroup(fsys)
		if c.bad != (err != nil) || got != c.want {
			t.Errorf("%s: Cgroup = %v, %v; want %v (error %v)", c.name, got, err, c.want, c.bad)
		}
	}
}

func TestChoose(t *testing.T) {
	limited := fstest.MapFS{
		"proc/self/cgroup":      {Data: []byte("0::/\n")},
		"sys/fs/cgroup/cpu.max": {Data: []byte("100000 100000\n")},
	}
	for _, c := range []struct {
		name       string
		explicit   int
		env        string
		sameCgroup bool
		want       int
		source     string
		bad        bool
	}{
		{name: "flag wins", explicit: 3, env: "2", sameCgroup: true, want: 3, source: "--haproxy-threads"},
		{name: "downward API", env: "2", want: 2, source: "HAPROXY_CPU_LIMIT=2"},
		{name: "downward API beats own cgroup", env: "4", sameCgroup: true, want: 4, source: "HAPROXY_CPU_LIMIT=4"},
		{name: "own cgroup with --haproxy-start", sameCgroup: true, want: 1, source: "cgroup CPU limit 1"},
		{name: "other container, no env: not the sidecar's limit", want: 0, source: "another container"},
		{name: "bad env", env: "lots", bad: true},
		{name: "flag too big", explicit: 65, bad: true},
		{name: "flag negative", explicit: -1, bad: true},
	} {
		got, err := Choose(c.explicit, c.env, c.sameCgroup, limited, 64)
		if c.bad {
			if err == nil {
				t.Errorf("%s: %+v, want an error", c.name, got)
			}
			continue
		}
		if err != nil || got.Threads != c.want || !strings.Contains(got.Source, c.source) {
			t.Errorf("%s: %+v, %v; want %d threads from %q", c.name, got, err, c.want, c.source)
		}
	}
}

// This machine's own cgroup files parse (whatever their limit).
func TestCgroupHere(t *testing.T) {
	l, err := Cgroup(os.DirFS("/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this process's CPU limit: %v (threads %d of %d CPUs)", float64(l), l.Threads(runtime.NumCPU()), runtime.NumCPU())
}
