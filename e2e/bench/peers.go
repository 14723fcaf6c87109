package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The side-by-side benchmark (peers_bench_test.go) runs haproxy-sidecar and
// two peer ingress controllers against the same workload and prints one
// table. This file holds what it computes and prints, unit-tested without
// the peers' binaries.

// PeerKeys are the peers BENCH_PEERS may name: hi is jcmoraisjr's
// haproxy-ingress, ht is haproxytech's kubernetes-ingress.
var PeerKeys = []string{"hi", "ht"}

// ParsePeers reads BENCH_PEERS, "hi=PATH,ht=PATH": each peer's controller
// binary, by key. Either or both may be given; empty means none.
func ParsePeers(v string) (map[string]string, error) {
	peers := map[string]string{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, path, ok := strings.Cut(item, "=")
		key, path = strings.TrimSpace(key), strings.TrimSpace(path)
		switch {
		case !ok:
			return nil, fmt.Errorf("BENCH_PEERS: %q is not KEY=PATH", item)
		case !slices.Contains(PeerKeys, key):
			return nil, fmt.Errorf("BENCH_PEERS: unknown peer %q (known: %s)", key, strings.Join(PeerKeys, ", "))
		case path == "":
			return nil, fmt.Errorf("BENCH_PEERS: %s has no path", key)
		}
		if _, dup := peers[key]; dup {
			return nil, fmt.Errorf("BENCH_PEERS: %s given twice", key)
		}
		peers[key] = path
	}
	return peers, nil
}

// Latency is one figure's samples summarised: p50 and p99 of what was
// served, and how many changes were not served in time.
type Latency struct {
	P50, P99 time.Duration
	Samples  int
	Failed   int
}

// Summarise is ds as a Latency (nearest-rank percentiles).
func Summarise(ds []time.Duration, failed int) Latency {
	s := slices.Clone(ds)
	slices.Sort(s)
	return Latency{P50: Percentile(s, 50), P99: Percentile(s, 99), Samples: len(s), Failed: failed}
}

// Contender is one column of the side-by-side table: a controller with
// its settings, and what was measured of it.
type Contender struct {
	Label    string
	NewHost  Latency // new host on an existing Service → first 200
	Endpoint Latency // EndpointSlice moved → traffic there
	NewSvc   Latency // new Service + Ingress → first 200
	Start    Latency // process start → first 200
	PeakRSS  int64   // the controller process's VmHWM, bytes; 0 when not read
	Ran      bool    // false when it could not run (Notes say why)
	Notes    []string
}

// PeersTable is the side-by-side table: one column per contender, the
// first being this project's; each peer's cell also shows its ratio to
// the first column's (peer / this project: above 1 is slower or bigger).
func PeersTable(cs []Contender) string {
	var b strings.Builder
	b.WriteString("| path (p50 / p99) |")
	for _, c := range cs {
		b.WriteString(" " + c.Label + " |")
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(cs)))
	b.WriteString("\n")
	rows := []struct {
		name string
		cell func(c, base Contender) string
	}{
		{"new host on an existing Service", func(c, base Contender) string { return latencyCell(c.NewHost, base.NewHost, true) }},
		{"endpoint moved", func(c, base Contender) string { return latencyCell(c.Endpoint, base.Endpoint, true) }},
		{"new Service + Ingress", func(c, base Contender) string { return latencyCell(c.NewSvc, base.NewSvc, true) }},
		{"start → first 200", func(c, base Contender) string { return latencyCell(c.Start, base.Start, false) }},
		{"controller peak RSS", func(c, base Contender) string { return rssCell(c.PeakRSS, base.PeakRSS) }},
	}
	for _, r := range rows {
		b.WriteString("| " + r.name + " |")
		for i, c := range cs {
			var cell string
			switch {
			case !c.Ran:
				cell = "not run"
			case i == 0 || !cs[0].Ran:
				cell = r.cell(c, Contender{})
			default:
				cell = r.cell(c, cs[0])
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// latencyCell is "p50 / p99 unit" (only p50 when !pair), with the ratios
// to base's when base has samples, and the changes not served in time.
func latencyCell(l, base Latency, pair bool) string {
	if l.Samples == 0 {
		if l.Failed > 0 {
			return fmt.Sprintf("**%d not served**", l.Failed)
		}
		return "–"
	}
	var cell string
	if pair {
		cell = DurationPair(l.P50, l.P99)
	} else {
		cell = DurationPair(l.P50, -1)
	}
	if base.Samples > 0 {
		if pair {
			cell += fmt.Sprintf(" (%s / %s)", Ratio(l.P50, base.P50), Ratio(l.P99, base.P99))
		} else {
			cell += fmt.Sprintf(" (%s)", Ratio(l.P50, base.P50))
		}
	}
	if l.Failed > 0 {
		cell += fmt.Sprintf("; **%d not served**", l.Failed)
	}
	return cell
}

func rssCell(rss, base int64) string {
	if rss <= 0 {
		return "–"
	}
	cell := fmt.Sprintf("%.0f MiB", float64(rss)/(1<<20))
	if base > 0 {
		cell += " (" + Ratio(time.Duration(rss), time.Duration(base)) + ")"
	}
	return cell
}

// DurationPair prints a and b (b < 0: a alone) in one unit: ms below a
// second, else s; two significant digits, three for 100 to 999 ms:
// "10 / 72 ms", "8.3 / 14 ms", "5.6 / 5.8 s". When a is below a second
// and b is not, each has its own unit: "5.0 ms / 2.0 s".
func DurationPair(a, b time.Duration) string {
	one := func(d time.Duration) (string, string) {
		if d >= time.Second {
			return sig2(float64(d) / float64(time.Second)), "s"
		}
		return sig2(float64(d) / float64(time.Millisecond)), "ms"
	}
	if b < 0 {
		v, unit := one(a)
		return v + " " + unit
	}
	if a < time.Second && b >= time.Second && a < 100*time.Millisecond {
		va, ua := one(a)
		vb, ub := one(b)
		return va + " " + ua + " / " + vb + " " + ub
	}
	unit, div := "ms", float64(time.Millisecond)
	if max(a, b) >= time.Second {
		unit, div = "s", float64(time.Second)
	}
	return sig2(float64(a)/div) + " / " + sig2(float64(b)/div) + " " + unit
}

// sig2 is v with two significant digits, but never rounding away whole
// units (379, not 380).
func sig2(v float64) string {
	switch {
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// Ratio is a / b as "30×", "5.3×" or "0.56×"; "–" when b is 0.
func Ratio(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return sig2(float64(a)/float64(b)) + "×"
}
