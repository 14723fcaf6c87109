package render

import "slices"

// memberSet is a set kept in a slice while it is small and in a map
// beyond maxListMembers. The engine keeps one per Service for each of
// its backends, its EndpointSlices and the Ingresses that use it, and
// most have one to a few members: a map of one member costs about 200
// bytes (its header and first group of slots) where a slice costs 8 to
// 16 a member, at 50k Ingresses and 10k Services about 6 MB of the heap
// the collector marks again and again. The map keeps one tenant's
// thousands of Ingresses on one Service from making each removal a walk.
//
// A memberSet is a value: the index maps hold it, and addMember and
// removeMember store it back. Its members come out in no particular
// order, as a map's do.
type memberSet[T comparable] struct {
	list []T
	big  map[T]bool
}

// maxListMembers is the most members a memberSet keeps in its slice.
const maxListMembers = 8

func (s *memberSet[T]) add(v T) {
	if s.big != nil {
		s.big[v] = true
		return
	}
	if slices.Contains(s.list, v) {
		return
	}
	if len(s.list) < maxListMembers {
		s.list = append(s.list, v)
		return
	}
	s.big = make(map[T]bool, 2*maxListMembers)
	for _, m := range s.list {
		s.big[m] = true
	}
	s.big[v], s.list = true, nil
}

func (s *memberSet[T]) remove(v T) {
	if s.big != nil {
		delete(s.big, v)
		return
	}
	if i := slices.Index(s.list, v); i >= 0 {
		last := len(s.list) - 1
		s.list[i] = s.list[last]
		var zero T
		s.list[last] = zero // keeps no removed member alive
		s.list = s.list[:last]
	}
}

func (s memberSet[T]) len() int {
	if s.big != nil {
		return len(s.big)
	}
	return len(s.list)
}

// all yields the members. The set must not change while it does.
func (s memberSet[T]) all(yield func(T) bool) {
	if s.big != nil {
		for m := range s.big {
			if !yield(m) {
				return
			}
		}
		return
	}
	for _, m := range s.list {
		if !yield(m) {
			return
		}
	}
}

// addMember adds v to the set of m under k.
func addMember[K, T comparable](m map[K]memberSet[T], k K, v T) {
	s := m[k]
	s.add(v)
	m[k] = s
}

// removeMember takes v out of the set of m under k, and k out of m when
// its set is left empty.
func removeMember[K, T comparable](m map[K]memberSet[T], k K, v T) {
	s, ok := m[k]
	if !ok {
		return
	}
	if s.remove(v); s.len() == 0 {
		delete(m, k)
	} else {
		m[k] = s
	}
}
