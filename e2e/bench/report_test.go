package bench

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile(ds[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestGoBenchRows(t *testing.T) {
	out := `goos: linux
BenchmarkRender/ingresses=1000/model-2         	     241	   4687267 ns/op	 1870433 B/op	   17049 allocs/op
BenchmarkRender/ingresses=1000/model-2         	     235	   4884047 ns/op	 1870432 B/op	   17049 allocs/op
BenchmarkRender/ingresses=1000/model-2         	     246	   4958216 ns/op	 1870432 B/op	   17049 allocs/op
BenchmarkChangeServed/runtime-2   30   18895407 ns/op
PASS
`
	rows, err := GoBenchRows(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	if r := rows[0]; r.Figure != "go test: BenchmarkRender/ingresses=1000/model" || r.Samples != 3 || r.P50 != "4.9 ms" || !strings.Contains(r.Notes, "17049 allocs/op") {
		t.Errorf("row %+v", r)
	}
	if r := rows[1]; r.P50 != "18.9 ms" || r.Samples != 1 {
		t.Errorf("row %+v", r)
	}
	table := Table(rows)
	if strings.Count(table, "\n") != 4 || !strings.HasPrefix(table, "| figure |") {
		t.Errorf("table:\n%s", table)
	}
}
