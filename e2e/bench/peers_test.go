package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParsePeers(t *testing.T) {
	got, err := ParsePeers(" hi=/c/hi/controller, ht=/c/ht/controller ")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["hi"] != "/c/hi/controller" || got["ht"] != "/c/ht/controller" {
		t.Errorf("got %v", got)
	}
	if got, err := ParsePeers("ht=/x"); err != nil || len(got) != 1 || got["ht"] != "/x" {
		t.Errorf("one peer: %v, %v", got, err)
	}
	if got, err := ParsePeers(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"hi":               "not KEY=PATH",
		"nginx=/x":         `unknown peer "nginx"`,
		"hi=":              "hi has no path",
		"hi=/a,hi=/b":      "hi given twice",
		"ht=/a,,hi=/b,x=y": `unknown peer "x"`,
	} {
		_, err := ParsePeers(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestDurationPairAndRatio(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		a, b time.Duration
		want string
	}{
		{10 * ms, 72 * ms, "10 / 72 ms"},
		{8300 * time.Microsecond, 14 * ms, "8.3 / 14 ms"},
		{300 * ms, 379 * ms, "300 / 379 ms"},
		{5600 * ms, 5800 * ms, "5.6 / 5.8 s"},
		{513 * ms, 1500 * ms, "0.51 / 1.5 s"},
		{250 * ms, -1, "250 ms"},
		{6100 * ms, -1, "6.1 s"},
		{4700 * time.Microsecond, 257 * ms, "4.7 / 257 ms"},
		{4992 * time.Microsecond, 1998 * ms, "5.0 ms / 2.0 s"},
	} {
		if got := DurationPair(c.a, c.b); got != c.want {
			t.Errorf("DurationPair(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		a, b time.Duration
		want string
	}{
		{300, 10, "30×"},
		{379, 72, "5.3×"},
		{47, 83, "0.57×"},
		{1, 0, "–"},
	} {
		if got := Ratio(c.a, c.b); got != c.want {
			t.Errorf("Ratio(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestPeersTable(t *testing.T) {
	ms := time.Millisecond
	ours := Contender{Label: "this project", Ran: true,
		NewHost:  Latency{P50: 10 * ms, P99: 72 * ms, Samples: 100},
		Endpoint: Latency{P50: 8300 * time.Microsecond, P99: 14 * ms, Samples: 100},
		NewSvc:   Latency{P50: 513 * ms, P99: 544 * ms, Samples: 30},
		Start:    Latency{P50: 250 * ms, P99: 260 * ms, Samples: 3},
		PeakRSS:  54 << 20}
	hi := Contender{Label: "haproxy-ingress, fastest", Ran: true,
		NewHost:  Latency{P50: 300 * ms, P99: 379 * ms, Samples: 100},
		Endpoint: Latency{P50: 205 * ms, P99: 275 * ms, Samples: 98, Failed: 2},
		NewSvc:   Latency{P50: 276 * ms, P99: 332 * ms, Samples: 30},
		Start:    Latency{P50: 360 * ms, P99: 400 * ms, Samples: 3},
		PeakRSS:  82 << 20}
	ht := Contender{Label: "haproxytech, default", Notes: []string{"not given"}}
	got := PeersTable([]Contender{ours, hi, ht})
	want := `| path (p50 / p99) | this project | haproxy-ingress, fastest | haproxytech, default |
|---|---|---|---|
| new host on an existing Service | 10 / 72 ms | 300 / 379 ms (30× / 5.3×) | not run |
| endpoint moved | 8.3 / 14 ms | 205 / 275 ms (25× / 20×); **2 not served** | not run |
| new Service + Ingress | 513 / 544 ms | 276 / 332 ms (0.54× / 0.61×) | not run |
| start → first 200 | 250 ms | 360 ms (1.4×) | not run |
| controller peak RSS | 54 MiB | 82 MiB (1.5×) | not run |
`
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// Without this project's column, no ratios.
	got = PeersTable([]Contender{hi})
	if strings.Contains(got, "×") || !strings.Contains(got, "| 300 / 379 ms |") {
		t.Errorf("peers alone:\n%s", got)
	}
	// A contender that ran but served nothing on a path.
	hi.NewHost = Latency{Failed: 100}
	if got := PeersTable([]Contender{ours, hi}); !strings.Contains(got, "| **100 not served** |") {
		t.Errorf("nothing served:\n%s", got)
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarise(ds, 3)
	if l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Samples != 100 || l.Failed != 3 {
		t.Errorf("%+v", l)
	}
	if ds[0] != 100*time.Millisecond {
		t.Errorf("Summarise sorted its argument")
	}
}
