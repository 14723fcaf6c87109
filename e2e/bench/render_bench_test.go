package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// renderSettings: the offline render of a dump (BENCH_ONLY=render).
type renderSettings struct {
	size   int // BENCH_RENDER_SIZE: Ingresses, default 10000
	repeat int // BENCH_RENDER_REPEAT: runs of each format and mode, taking turns; default 5
}

func loadRenderSettings(b *testing.B) renderSettings {
	return renderSettings{
		size:   atoiOr(b, "BENCH_RENDER_SIZE", 10000),
		repeat: atoiOr(b, "BENCH_RENDER_REPEAT", 5),
	}
}

// gnuTime is GNU time (Debian's time package, which
// scripts/install-kube.sh installs): the render part's peak RSS.
const gnuTime = "/usr/bin/time"

// renderFormats are the files the render part writes: the dumps of
// WriteDump, and WriteManifests' JSON documents.
var renderFormats = append(slices.Clone(DumpFormats), "json-docs")

// render: `haproxy-sidecar render --manifests FILE --out DIR`, the whole
// process, for the synthetic cluster written in each format, with
// `haproxy -c` of the first BENCH_HAPROXY version and with
// --no-validate: wall time, and the CPU time (user + sys, its `haproxy
// -c` child included, as wait4 counts it) and peak RSS of the process.
//
// The peak RSS is GNU time's (%M): a child Go starts has this process's
// own peak as its ru_maxrss (Go forks with vfork, and the kernel keeps
// the high-water mark of the memory the child shared until exec), which
// here is the test's, with the whole cluster's objects in it. time forks
// without vfork, so its child's figure is the sidecar's alone.
func (r *run) render() {
	b := r.b
	set := r.set.rnd
	dir := b.TempDir()
	files := map[DumpFormat]string{}
	for _, f := range renderFormats {
		path := filepath.Join(dir, string(f)+".yaml")
		var err error
		if f == "json-docs" {
			err = WriteManifestFile(path, r.spec, nil)
		} else {
			err = WriteDumpFile(path, r.spec, nil, f)
		}
		if err != nil {
			b.Fatal(err)
		}
		files[f] = path
	}
	type key struct {
		format   DumpFormat
		validate bool
	}
	type sample struct {
		wall, cpu time.Duration
		rssKiB    int64
	}
	samples := map[key][]sample{}
	n := strconv.Itoa(r.spec.Ingresses)
	// One discarded round first (page cache), then the formats and modes
	// take turns, so that whatever else runs on the machine spreads over
	// all of them.
	for k := -1; k < set.repeat; k++ {
		for _, f := range renderFormats {
			for _, validate := range []bool{true, false} {
				args := []string{"render", "--manifests", files[f], "--out", filepath.Join(dir, "out")}
				if validate {
					args = append(args, "--haproxy", r.haproxy)
				} else {
					args = append(args, "--no-validate")
				}
				os.RemoveAll(filepath.Join(dir, "out"))
				rssFile := filepath.Join(dir, "maxrss")
				cmd := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rssFile, r.binary}, args...)...)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("haproxy-sidecar %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 4000))
				}
				s := sample{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
				kib, err := os.ReadFile(rssFile)
				if err != nil {
					b.Fatal(err)
				}
				if s.rssKiB, err = strconv.ParseInt(strings.TrimSpace(string(kib)), 10, 64); err != nil {
					b.Fatalf("%s -f %%M: %q: %v", gnuTime, kib, err)
				}
				if k >= 0 {
					samples[key{f, validate}] = append(samples[key{f, validate}], s)
				}
			}
		}
	}
	for _, f := range renderFormats {
		st, err := os.Stat(files[f])
		if err != nil {
			b.Fatal(err)
		}
		for _, validate := range []bool{true, false} {
			ss := samples[key{f, validate}]
			var walls, cpus []time.Duration
			var rss int64
			for _, s := range ss {
				walls, cpus = append(walls, s.wall), append(cpus, s.cpu)
				rss = max(rss, s.rssKiB)
			}
			slices.Sort(cpus)
			mode, haproxy := "--no-validate", "–"
			if validate {
				mode, haproxy = "with `haproxy -c`", r.version
			}
			cmd := benchCmd("BENCH_ONLY=render", "BENCH_HAPROXY="+r.version, "BENCH_RENDER_SIZE="+n, "BENCH_RENDER_REPEAT="+strconv.Itoa(set.repeat))
			notes := fmt.Sprintf("`haproxy-sidecar render --manifests FILE --out DIR` %s, the whole process; FILE: %s, %.1f MB (%d Ingresses, %d Services and EndpointSlices); CPU (user + sys, with haproxy -c's) p50 %s, peak RSS %d MiB; %s",
				mode, f, float64(st.Size())/1e6, r.spec.Ingresses, r.spec.Services(), Ms(Percentile(cpus, 50)), rss>>10, cmd)
			row := LatencyRow("offline render: "+string(f), n, haproxy, r.variant, walls, 0, notes)
			r.rows = append(r.rows, row)
			b.Logf("render %s %s: wall p50 %s max %s, CPU p50 %s, peak RSS %d MiB", f, mode, row.P50, row.Max, Ms(Percentile(cpus, 50)), rss>>10)
		}
	}
}
