package render

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// A memberSet holds what a map would through any sequence of additions
// and removals, across the move from its slice to its map, and an index
// of them loses a key with its last member.
func TestMemberSetAsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 300 {
		idx := map[int]memberSet[int]{}
		want := map[int]map[int]bool{}
		for range 200 {
			k, v := rng.IntN(3), rng.IntN(2+run%30)
			if rng.IntN(3) == 0 {
				removeMember(idx, k, v)
				if delete(want[k], v); len(want[k]) == 0 {
					delete(want, k)
				}
			} else {
				addMember(idx, k, v)
				if want[k] == nil {
					want[k] = map[int]bool{}
				}
				want[k][v] = true
			}
			if len(idx) != len(want) {
				t.Fatalf("run %d: keys %v, want %v", run, slices.Sorted(maps.Keys(idx)), slices.Sorted(maps.Keys(want)))
			}
			for k, w := range want {
				s := idx[k]
				got := slices.Sorted(s.all)
				if !slices.Equal(got, slices.Sorted(maps.Keys(w))) || s.len() != len(w) {
					t.Fatalf("run %d: key %d: members %v (len %d), want %v", run, k, got, s.len(), slices.Sorted(maps.Keys(w)))
				}
				if (s.big != nil) != (len(w) > maxListMembers) && s.big == nil {
					t.Fatalf("run %d: key %d: %d members in the slice", run, k, len(w))
				}
			}
		}
	}
}
