package haproxycfg

import (
	"slices"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// The runtime contract: what `run` may change in a running HAProxy
// without a reload, as values, so that the planner never parses rendered
// bytes back. The files render writes hold exactly these values.

// RuntimeMaps are the generated map files HAProxy changes at run time
// (add/set/del map), by the path HAProxy knows them by.
var RuntimeMaps = []string{ExactMapFile, PrefixMapFile, TLSHostsMapFile}

// MapEntries returns the key → value entries of a generated map file, as
// the file holds them; nil for a file that is not a runtime map.
func (o *Output) MapEntries(name string) map[string]string {
	m := o.model
	switch name {
	case ExactMapFile, PrefixMapFile:
		match := render.MatchExact
		if name == PrefixMapFile {
			match = render.MatchPrefix
		}
		entries := make(map[string]string, len(m.Routes))
		for _, r := range m.Routes {
			if r.Match == match {
				entries[r.Key] = r.MapValue()
			}
		}
		return entries
	case TLSHostsMapFile:
		entries := make(map[string]string, len(m.TLSHosts))
		for _, h := range m.TLSHosts {
			entries[h] = tlsHostValue
		}
		return entries
	}
	return nil
}

// tlsHostValue is the value of every TLS hosts map entry: the lookup only
// asks whether the host is there.
const tlsHostValue = "1"

// MapChange is one entry that differs between two renders of a runtime
// map: Value is "" for a key that is gone; Added says the key is new.
type MapChange struct {
	Key, Value string
	Added      bool
}

// MapChanges lists the entries of a runtime map that differ from old to
// next: deletions first, each part sorted by key. Both renders' entries are kept sorted, so this
// walks them side by side instead of building two maps.
func MapChanges(name string, old, next *Output) []MapChange {
	var out []MapChange
	switch name {
	case ExactMapFile, PrefixMapFile:
		match := render.MatchExact
		if name == PrefixMapFile {
			match = render.MatchPrefix
		}
		if sameSlice(old.model.Routes, next.model.Routes) {
			break // the engine hands out the same routes when none changed
		}
		a, b := old.routesOf[match], next.routesOf[match]
		if sameSlice(a, b) {
			break
		}
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			if i < len(a) && j < len(b) && a[i] == b[j] {
				// The same route (routes are never changed): most are.
				i++
				j++
				continue
			}
			if (i < len(a) && a[i].Order() == "") || (j < len(b) && b[j].Order() == "") {
				// Routes not made by the builder have no sort key:
				// compare as maps.
				return mapChanges(old.MapEntries(name), next.MapEntries(name))
			}
			switch {
			case i == len(a) && j == len(b):
			case j == len(b) || (i < len(a) && a[i].Order() < b[j].Order()):
				out = append(out, MapChange{Key: a[i].Key})
				i++
			case i == len(a) || b[j].Order() < a[i].Order():
				out = append(out, MapChange{Key: b[j].Key, Value: b[j].MapValue(), Added: true})
				j++
			default:
				if v := b[j].MapValue(); a[i].MapValue() != v {
					out = append(out, MapChange{Key: b[j].Key, Value: v})
				}
				i++
				j++
			}
		}
	case TLSHostsMapFile:
		a, b := old.model.TLSHosts, next.model.TLSHosts
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			switch {
			case j == len(b) || (i < len(a) && a[i] < b[j]):
				out = append(out, MapChange{Key: a[i]})
				i++
			case i == len(a) || b[j] < a[i]:
				out = append(out, MapChange{Key: b[j], Value: tlsHostValue, Added: true})
				j++
			default:
				i++
				j++
			}
		}
	}
	sortChanges(out)
	return out
}

func mapChanges(was, now map[string]string) []MapChange {
	var out []MapChange
	for k := range was {
		if _, ok := now[k]; !ok {
			out = append(out, MapChange{Key: k})
		}
	}
	for k, v := range now {
		if prev, ok := was[k]; !ok {
			out = append(out, MapChange{Key: k, Value: v, Added: true})
		} else if prev != v {
			out = append(out, MapChange{Key: k, Value: v})
		}
	}
	sortChanges(out)
	return out
}

func sortChanges(cs []MapChange) {
	slices.SortFunc(cs, func(x, y MapChange) int {
		if dx, dy := x.Value == "", y.Value == ""; dx != dy {
			if dx {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Key, y.Key)
	})
}
