package render

import (
	"net/netip"
	"slices"
	"testing"
)

func addrs(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		if s != "" {
			out[i] = netip.MustParseAddrPort(s)
		}
	}
	return out
}

// Surviving endpoints keep their slots; new ones take the lowest free
// slots in sorted order; without a previous model the order is sorted.
func TestAssignSlots(t *testing.T) {
	for _, tc := range []struct {
		name          string
		servers, prev []string
		n             int
		want          []string
	}{
		{"no previous: sorted", []string{"10.0.0.1:80", "10.0.0.2:80"}, nil, 4, []string{"10.0.0.1:80", "10.0.0.2:80", "", ""}},
		{"first removed: the others stay", []string{"10.0.0.2:80", "10.0.0.3:80"},
			[]string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", ""}, 4, []string{"", "10.0.0.2:80", "10.0.0.3:80", ""}},
		{"added: the lowest free slot", []string{"10.0.0.0:80", "10.0.0.2:80", "10.0.0.3:80"},
			[]string{"", "10.0.0.2:80", "10.0.0.3:80", ""}, 4, []string{"10.0.0.0:80", "10.0.0.2:80", "10.0.0.3:80", ""}},
		{"replaced in place", []string{"10.0.0.1:80", "10.0.0.9:80"},
			[]string{"10.0.0.1:80", "10.0.0.2:80", "", ""}, 4, []string{"10.0.0.1:80", "10.0.0.9:80", "", ""}},
		{"fewer slots: what no longer fits moves down", []string{"10.0.0.1:80", "10.0.0.8:80"},
			[]string{"", "", "", "", "", "", "", "10.0.0.8:80"}, 4, []string{"10.0.0.1:80", "10.0.0.8:80", "", ""}},
	} {
		got := assignSlots(addrs(tc.servers...), tc.n, addrs(tc.prev...))
		if !slices.Equal(got, addrs(tc.want...)) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
