package bench

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Row is one line of the results table.
type Row struct {
	Figure  string // what was measured
	N       string // Ingresses in the cluster
	HAProxy string
	Variant string // plain, or tls (1k TLS Secrets)
	Samples int
	P50     string
	P90     string
	P99     string
	Max     string
	Notes   string
}

// LatencyRow summarises durations as p50/p90/p99/max. failed counts the
// changes that were not served within the limit; they are not in ds.
func LatencyRow(figure, n, haproxy, variant string, ds []time.Duration, failed int, notes string) Row {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := Row{Figure: figure, N: n, HAProxy: haproxy, Variant: variant, Samples: len(s), Notes: notes}
	if len(s) > 0 {
		r.P50, r.P90, r.P99, r.Max = Ms(Percentile(s, 50)), Ms(Percentile(s, 90)), Ms(Percentile(s, 99)), Ms(s[len(s)-1])
	}
	if failed > 0 {
		r.Notes = strings.TrimPrefix(r.Notes+"; ", "; ") + fmt.Sprintf("**%d not served in time**", failed)
	}
	return r
}

// Ms formats d in milliseconds, with one decimal under 100 ms.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 100 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// Table is the results as one markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| figure | N | HAProxy | variant | samples | p50 | p90 | p99 | max | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	dash := func(s string) string {
		if s == "" {
			return "–"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	for _, r := range rows {
		samples := "–"
		if r.Samples > 0 {
			samples = strconv.Itoa(r.Samples)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			dash(r.Figure), dash(r.N), dash(r.HAProxy), dash(r.Variant), samples,
			dash(r.P50), dash(r.P90), dash(r.P99), dash(r.Max), dash(r.Notes))
	}
	return b.String()
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$`)

// GoBenchRows turns `go test -bench` output into rows: one per benchmark
// name, with the median ns/op of its runs (-count) as p50 and the other
// reported units (B/op, allocs/op, custom metrics) of the median run as
// notes.
func GoBenchRows(r io.Reader) ([]Row, error) {
	type run struct {
		ns    float64
		notes string
	}
	runs := map[string][]run{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		if _, seen := runs[m[1]]; !seen {
			order = append(order, m[1])
		}
		runs[m[1]] = append(runs[m[1]], run{ns: ns, notes: strings.Join(strings.Fields(m[4]), " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(order))
	for _, name := range order {
		rs := runs[name]
		slices.SortFunc(rs, func(a, b run) int { return cmp.Compare(a.ns, b.ns) })
		med := rs[(len(rs)-1)/2]
		rows = append(rows, Row{
			Figure:  "go test: " + name,
			Samples: len(rs),
			P50:     Ms(time.Duration(med.ns)),
			Notes:   strings.TrimSuffix("ns/op (median run) in p50; "+med.notes, "; "),
		})
	}
	return rows, nil
}
