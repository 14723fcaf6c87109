package bench

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
)

// checkSettings: haproxy -c of the rendered configuration against a
// minimal one of the same size (BENCH_ONLY=check).
type checkSettings struct {
	size   int // BENCH_CHECK_SIZE: Ingresses, default 10000
	repeat int // BENCH_CHECK_REPEAT: runs of each, interleaved; the median is reported; default 5
}

func loadCheckSettings(b *testing.B) checkSettings {
	return checkSettings{
		size:   atoiOr(b, "BENCH_CHECK_SIZE", 10000),
		repeat: atoiOr(b, "BENCH_CHECK_REPEAT", 5),
	}
}

// check: `haproxy -c -f` of `haproxy-sidecar render`'s directory for the
// synthetic cluster against MinimalConfig of it (the same backends, server
// lines and map files, none of the frontend logic), for each HAProxy
// version: wall time.
func (r *run) check(bins map[string]string) {
	b := r.b
	set := r.set.chk
	dir := b.TempDir()
	manifests := filepath.Join(dir, "cluster.yaml")
	if err := WriteManifestFile(manifests, r.spec, nil); err != nil {
		b.Fatal(err)
	}
	ports := sidecartest.FreePorts(b, 3)
	ours, minimal := filepath.Join(dir, "ours"), filepath.Join(dir, "minimal")
	// Validated below, by each version.
	r.renderDir(manifests, ours, ports[0], ports[1], false)
	oursSize, err := ConfigSize(ours)
	if err != nil {
		b.Fatal(err)
	}
	minSize, err := WriteMinimalDir(ours, minimal, "127.0.0.1:"+strconv.Itoa(ports[2]))
	if err != nil {
		b.Fatal(err)
	}
	if oursSize != minSize {
		b.Fatalf("sizes differ: ours %s, minimal %s", oursSize, minSize)
	}
	n := strconv.Itoa(r.spec.Ingresses)
	for _, version := range r.set.versions {
		bin := bins[version]
		var ds [2][]time.Duration
		cfgs := [2]string{filepath.Join(ours, "haproxy.cfg"), filepath.Join(minimal, "haproxy.cfg")}
		// One discarded run of each first: files in the page cache.
		for k := -1; k < set.repeat; k++ {
			for i, cfg := range cfgs {
				took, err := TimeCheck(bin, cfg)
				if err != nil {
					b.Fatalf("HAProxy %s: %v", version, err)
				}
				if k >= 0 {
					ds[i] = append(ds[i], took)
				}
			}
		}
		var p50 [2]time.Duration
		for i := range ds {
			slices.Sort(ds[i])
			p50[i] = Percentile(ds[i], 50)
		}
		ratio := float64(p50[0]) / float64(p50[1])
		cmd := benchCmd("BENCH_ONLY=check", "BENCH_HAPROXY="+version, "BENCH_CHECK_SIZE="+n, "BENCH_CHECK_REPEAT="+strconv.Itoa(set.repeat))
		what := fmt.Sprintf("wall time of `haproxy -c -f haproxy.cfg`, median of %d runs interleaved with the other (after one discarded run each)", set.repeat)
		rowOurs := LatencyRow("haproxy -c: our rendered configuration", n, version, r.variant, ds[0], 0,
			fmt.Sprintf("**%.2f× the minimal configuration** (p50); `haproxy-sidecar render --manifests` of the synthetic cluster (%d Ingresses, %d Services): %s; %s; %s",
				ratio, r.spec.Ingresses, r.spec.Services(), oursSize, what, cmd))
		rowMin := LatencyRow("haproxy -c: minimal configuration of the same size", n, version, r.variant, ds[1], 0,
			fmt.Sprintf("MinimalConfig (check.go) of the rendered one: global default-path, defaults mode http + 3 timeouts, one frontend with one bind and one lookup per map file, the same backends and server lines, the same map entries without the comment lines (%s); no balance, TLS or error responses; %s; %s",
				minSize, what, cmd))
		r.rows = append(r.rows, rowOurs, rowMin)
		b.Logf("HAProxy %s: haproxy -c ours p50 %s, minimal p50 %s: %.2f×", version, Ms(p50[0]), Ms(p50[1]), ratio)
	}
}
