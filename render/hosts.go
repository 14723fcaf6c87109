package render

import "strings"

// CountHosts counts the distinct hosts of routes, which are in route order
// (Model.Routes: a host's routes are next to each other). Given the routes
// of an earlier model and their count (prev, prevHosts), it reads only
// where the two lists differ: the routes that did not change are the same
// pointers in both, and are passed over without being read. At 50k
// Ingresses, reading every route's host after every pass (for the
// haproxy_sidecar_served gauge) was a tenth of what the sidecar did
// between changes. prev nil counts every route.
func CountHosts(routes, prev []*Route, prevHosts int) int {
	if prev == nil {
		return hostStarts(routes, 0, len(routes))
	}
	n := prevHosts
	i, j := 0, 0
	for i < len(prev) || j < len(routes) {
		if i < len(prev) && j < len(routes) && prev[i] == routes[j] {
			i++
			j++
			continue
		}
		// A run that differs: prev[i0:i] became routes[j0:j], up to the
		// next route both have at the same place (or the ends).
		i0, j0 := i, j
		for i < len(prev) || j < len(routes) {
			if i < len(prev) && j < len(routes) && prev[i] == routes[j] {
				break
			}
			switch {
			case j == len(routes):
				i++
			case i == len(prev):
				j++
			case prev[i].order == "" || routes[j].order == "":
				// Routes not made by the builder have no sort key.
				return hostStarts(routes, 0, len(routes))
			default:
				switch c := strings.Compare(prev[i].order, routes[j].order); {
				case c < 0:
					i++ // gone
				case c > 0:
					j++ // new
				default:
					i++ // the same place, another route
					j++
				}
			}
		}
		// Whether a route starts a host depends on the route before it
		// only: the run's routes, and the one after it (its predecessor
		// may have changed). Before the run both lists are the same.
		n += hostStarts(routes, j0, min(j+1, len(routes))) - hostStarts(prev, i0, min(i+1, len(prev)))
	}
	return n
}

// hostStarts counts the routes of routes[from:to] whose host is not the
// one of the route before them (the first route starts its host).
func hostStarts(routes []*Route, from, to int) int {
	n := 0
	for k := from; k < to; k++ {
		if k == 0 || routes[k].Host != routes[k-1].Host {
			n++
		}
	}
	return n
}
