package render_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// guardRatioFile holds the ratio TestRenderGuard compares with; rewrite it
// with `go test ./render -run RenderGuard -update` after an intended change.
const guardRatioFile = "testdata/guard-ratio.txt"

const (
	// guardReps timed repetitions of each side; the minimum counts, since
	// noise from other processes only ever adds time.
	guardReps = 9
	// guardAttempts: a ratio over the limit is measured again before the
	// test fails, so one unlucky moment on a busy machine is not a failure
	// while a real regression fails every attempt.
	guardAttempts = 5
	// guardFactor is how far the ratio may grow beyond the recorded one.
	guardFactor = 2.0
)

// TestRenderGuard is the regression guard of the full render (BuildModel
// and Render with the embedded template) at 1k Ingresses, and of the
// incremental render of a new Service given a spare backend (and removed
// again) at 1k. Machines differ, so it does not compare a time with a
// time: it compares each with a fixed CPU- and allocation-bound baseline
// measured in the same run, and fails when that ratio is more than
// guardFactor times the ratio recorded in its file in testdata/. Figures
// for people are in BENCHMARKS.md (make bench), not here.
func TestRenderGuard(t *testing.T) {
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := haproxycfg.Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	in := syntheticInputs(1000)
	fullRender := func() {
		m := render.BuildModel(in, render.Options{})
		if _, err := haproxycfg.Render(m, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// 20 new Services, each added and removed again, at run time.
	spares := render.Options{SpareBackends: 128}
	inc := haproxycfg.NewIncremental(cfg)
	prev, _, err := inc.Render(in, spares)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	newServices := func() {
		for range 40 {
			i++
			next := in
			if i%2 == 1 {
				withNewServices(&next, 1000, i, 1)
			}
			o := spares
			o.Previous = prev
			if prev, _, err = inc.Render(next, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name, file, what string
		work             func()
	}{
		{"full", guardRatioFile, "the full render at 1k Ingresses", fullRender},
		{"spare", guardSpareRatioFile, "a new Service into a spare backend and out again at 1k Ingresses (20 of each)", newServices},
	} {
		t.Run(c.name, func(t *testing.T) { guard(t, c.file, c.what, c.work) })
	}
}

// guardSpareRatioFile is TestRenderGuard/spare's guardRatioFile.
const guardSpareRatioFile = "testdata/guard-ratio-spare.txt"

// guard compares work's time with the baseline's against the ratio in
// file (see TestRenderGuard), or records it with -update.
func guard(t *testing.T, file, what string, work func()) {
	records := baselineRecords()
	baseline := func() { baselineWork(records) }

	// Warm up both (template caches, page faults of the first allocations).
	work()
	baseline()

	if *testenv.Update {
		ratios := make([]float64, 3)
		for i := range ratios {
			ratios[i] = guardRatio(work, baseline)
		}
		slices.Sort(ratios)
		content := fmt.Sprintf("# %s (render/guard_test.go) divided by the baseline\n"+
			"# work measured in the same run; TestRenderGuard fails above %.0f× this.\n"+
			"# Rewrite: go test ./render -run RenderGuard -update\n%.3f\n", what, guardFactor, ratios[1])
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded ratio %.3f (measured %.3f, %.3f, %.3f)", ratios[1], ratios[0], ratios[1], ratios[2])
		return
	}

	recorded, err := readGuardRatio(file)
	if err != nil {
		t.Fatalf("%v (write it with: go test ./render -run RenderGuard -update)", err)
	}
	limit := guardFactor * recorded
	var seen []string
	for range guardAttempts {
		ratio := guardRatio(work, baseline)
		seen = append(seen, strconv.FormatFloat(ratio, 'f', 3, 64))
		if ratio <= limit {
			t.Logf("%s/baseline ratio %.3f, recorded %.3f, limit %.3f", what, ratio, recorded, limit)
			return
		}
	}
	t.Errorf("%s got slower: ratio to the baseline %s in %d attempts, "+
		"recorded %.3f, limit %.3f (%.0f×). If this is intended, rewrite %s with -update "+
		"and explain the change in BENCHMARKS.md", what, strings.Join(seen, ", "), guardAttempts, recorded, limit, guardFactor, file)
}

// guardRatio times both sides guardReps times, interleaved so that a busy
// moment affects both, and divides their minimums.
func guardRatio(work, baseline func()) float64 {
	minWork, minBase := time.Duration(1<<62), time.Duration(1<<62)
	for range guardReps {
		minBase = min(minBase, timed(baseline))
		minWork = min(minWork, timed(work))
	}
	return float64(minWork) / float64(minBase)
}

func timed(f func()) time.Duration {
	runtime.GC()
	start := time.Now()
	f()
	return time.Since(start)
}

func readGuardRatio(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := strconv.ParseFloat(line, 64)
		if err != nil || r <= 0 {
			return 0, fmt.Errorf("%s: %q is not a positive ratio", path, line)
		}
		return r, nil
	}
	return 0, fmt.Errorf("%s holds no ratio", path)
}

// baselineRecord is the baseline's data: a fixed set of route-like records.
type baselineRecord struct {
	Namespace, Name, Host, Path string
	Addrs                       []string
	Port, Weight                int
}

// baselineRecords is deterministic (fixed seed), so the baseline does the
// same work on every run.
func baselineRecords() []baselineRecord {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]baselineRecord, 3000)
	for i := range recs {
		r := &recs[i]
		r.Namespace = "ns" + strconv.Itoa(rng.IntN(100))
		r.Name = "app" + strconv.Itoa(rng.IntN(1_000_000))
		r.Host = r.Name + ".example.com"
		r.Path = "/" + strconv.FormatUint(rng.Uint64(), 36)
		for j := range 3 {
			r.Addrs = append(r.Addrs, fmt.Sprintf("10.%d.%d.%d", j, rng.IntN(256), rng.IntN(256)))
		}
		r.Port, r.Weight = 8000+rng.IntN(1000), rng.IntN(256)
	}
	return recs
}

// baselineWork is the kind of work a render does, without the render's
// code: reflection-driven encoding, sorting, maps keyed by strings, and
// text built by concatenation and formatting. Its speed follows the
// machine's (CPU, memory, allocator), not this repository's code.
func baselineWork(recs []baselineRecord) {
	encoded, err := json.Marshal(recs)
	if err != nil {
		panic(err)
	}
	var back []baselineRecord
	if err := json.Unmarshal(encoded, &back); err != nil {
		panic(err)
	}
	byKey := make(map[string]*baselineRecord)
	for i := range back {
		byKey[back[i].Namespace+"/"+back[i].Name+back[i].Path] = &back[i]
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out bytes.Buffer
	for _, k := range keys {
		r := byKey[k]
		out.WriteString(r.Host + r.Path + " " + k + "\n")
		for j, a := range r.Addrs {
			fmt.Fprintf(&out, "    server s%d %s:%d weight %d\n", j, a, r.Port, r.Weight)
		}
	}
	if out.Len() == 0 {
		panic("baseline produced nothing")
	}
}
