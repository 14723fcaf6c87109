package run

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// stampedBinary builds the sidecar as a release is built (scripts/build.sh
// with a version, commit and build date).
func stampedBinary(t *testing.T, version, commit, date string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "haproxy-sidecar")
	cmd := exec.Command("sh", "../../scripts/build.sh", bin)
	cmd.Env = append(os.Environ(), "VERSION="+version, "COMMIT="+commit, "BUILD_DATE="+date)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	return bin
}

// buildInfoLabels scrapes the sidecar's /metrics (Prometheus' own parser)
// and returns haproxy_sidecar_build_info's labels; its value must be 1 and
// it must be one series.
func buildInfoLabels(s *sidecar) (map[string]string, error) {
	code, body, err := sidecartest.Get(s.HealthPort, "localhost", "/metrics")
	if err != nil || code != 200 {
		return nil, fmt.Errorf("/metrics: %d %v", code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %v", err)
	}
	fam, ok := families["haproxy_sidecar_build_info"]
	if !ok || len(fam.Metric) != 1 || fam.Metric[0].Gauge == nil {
		return nil, fmt.Errorf("haproxy_sidecar_build_info: %v", fam)
	}
	if v := fam.Metric[0].Gauge.GetValue(); v != 1 {
		return nil, fmt.Errorf("haproxy_sidecar_build_info is %v, want 1", v)
	}
	labels := map[string]string{}
	for _, l := range fam.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	return labels, nil
}

// haproxy_sidecar_build_info on a live run says what `version` says:
// the stamped version, commit and build date, Go's version, and the
// version of the HAProxy it runs, on 2.6 and 3.0. With an HAProxy another
// container started, it is that master's version (asked over the master
// CLI), not the version of the binary the sidecar validates with.
func TestBuildInfoMetric(t *testing.T) {
	const (
		version = "0.25.0-test.2"
		commit  = "feedfacefeedfacefeedfacefeedfacefeedface"
		date    = "2026-02-03T04:05:06Z"
	)
	bin := stampedBinary(t, version, commit, date)
	haproxies := testenv.HAProxies(t)
	full := map[string]string{}
	for v, b := range haproxies {
		hv, err := reload.Version(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		full[v] = hv.Full
	}
	want := func(haproxy string) map[string]string {
		return map[string]string{"version": version, "commit": commit, "build_date": date,
			"go_version": runtime.Version(), "haproxy_version": haproxy}
	}
	same := func(got, want map[string]string) bool { return fmt.Sprint(got) == fmt.Sprint(want) }

	forEachHAProxy(t, func(t *testing.T, hap string) {
		branch := "2.6"
		if hap == haproxies["3.0"] {
			branch = "3.0"
		}
		// version says the same as the metric will.
		out, err := exec.Command(bin, "version", "--haproxy-bin", hap, "--output", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]string
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		for k, w := range want(full[branch]) {
			if v[k] != w {
				t.Errorf("version --output json: %s = %q, want %q", k, v[k], w)
			}
		}

		s := startSidecar(t, sidecartest.Options{Binary: bin, HAProxy: hap})
		s.Eventually(5*time.Second, "build_info", func() error {
			got, err := buildInfoLabels(s)
			if err != nil {
				return err
			}
			if !same(got, want(full[branch])) {
				return fmt.Errorf("labels %v, want %v", got, want(full[branch]))
			}
			return nil
		})
	})

	t.Run("external", func(t *testing.T) {
		// The sidecar validates with 2.6; the HAProxy container runs 3.0.
		s := startSidecar(t, sidecartest.Options{Binary: bin, External: true, HAProxy: haproxies["2.6"],
			DebugPort: -1, Wait: sidecartest.WaitNone})
		s.Eventually(20*time.Second, "/startupz", func() error {
			if code, body, err := sidecartest.Get(s.HealthPort, "localhost", "/startupz"); err != nil || code != 200 {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
			return nil
		})
		// No master yet: the binary's version.
		if got, err := buildInfoLabels(s); err != nil || !same(got, want(full["2.6"])) {
			t.Errorf("before HAProxy runs: %v %v, want %v", got, err, want(full["2.6"]))
		}
		startHAProxy(t, haproxies["3.0"], s.Socket, s.ConfigDir)
		s.Eventually(10*time.Second, "the running master's version", func() error {
			got, err := buildInfoLabels(s)
			if err != nil {
				return err
			}
			if !same(got, want(full["3.0"])) {
				return fmt.Errorf("labels %v, want %v", got, want(full["3.0"]))
			}
			return nil
		})
	})
}
