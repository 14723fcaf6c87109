package render

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// CountHosts from an earlier list and its count gives what counting every
// route gives, whatever was added, removed or replaced where (hosts
// gained, lost, split or joined), and reads none of the routes both lists
// share.
func TestCountHostsFromAnEarlierList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	route := func(host, path string) *Route {
		return &Route{Host: host, Path: path, order: routeOrder(0, host, MatchPrefix, host+path)}
	}
	sorted := func(rs []*Route) []*Route {
		slices.SortFunc(rs, byRouteOrder)
		return rs
	}
	for round := range 2000 {
		var prev []*Route
		for range rng.IntN(40) {
			h := fmt.Sprintf("h%02d", rng.IntN(12))
			p := fmt.Sprintf("/p%03d", rng.IntN(1000))
			if !slices.ContainsFunc(prev, func(r *Route) bool { return r.Host == h && r.Path == p }) {
				prev = append(prev, route(h, p))
			}
		}
		prev = sorted(prev)
		next := slices.Clone(prev)
		for range rng.IntN(6) {
			switch k := rng.IntN(3); {
			case k == 0 && len(next) > 0: // removed
				i := rng.IntN(len(next))
				next = slices.Delete(next, i, i+1)
			case k == 1: // added
				h := fmt.Sprintf("h%02d", rng.IntN(14))
				p := fmt.Sprintf("/q%03d", rng.IntN(1000))
				if !slices.ContainsFunc(next, func(r *Route) bool { return r.Host == h && r.Path == p }) {
					next = sorted(append(next, route(h, p)))
				}
			case k == 2 && len(next) > 0: // replaced: the same place, a new route
				i := rng.IntN(len(next))
				c := *next[i]
				next[i] = &c
			}
		}
		want := hostStarts(next, 0, len(next))
		if got := CountHosts(next, prev, hostStarts(prev, 0, len(prev))); got != want {
			t.Fatalf("round %d: %d hosts counted from the earlier list, %d counting all\nprev: %v\nnext: %v", round, got, want, hostsOf(prev), hostsOf(next))
		}
	}

	// Routes both lists share are not read: a nil among them would be.
	shared := []*Route{route("a", "/1"), route("b", "/1"), nil, route("c", "/1")}
	next := slices.Insert(slices.Clone(shared), 4, route("d", "/1"))
	prev := slices.Clone(shared)
	prev[2], next[2] = nil, nil
	if got := CountHosts(next[3:], prev[3:], 1); got != 2 {
		t.Errorf("a route added after the shared ones: %d hosts, want 2", got)
	}
	// Routes without a sort key (not made by the builder) are all counted.
	bare := []*Route{{Host: "a"}, {Host: "b"}}
	if got := CountHosts(bare, []*Route{{Host: "a"}}, 7); got != 2 {
		t.Errorf("routes without a sort key: %d hosts, want 2", got)
	}
}

func hostsOf(rs []*Route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Host+r.Path)
	}
	return out
}
