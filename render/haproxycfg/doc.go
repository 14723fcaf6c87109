// Package haproxycfg writes the files HAProxy reads from a render.Model:
// haproxy.cfg through the template (its backend sections rendered one by
// one and kept between renders), the map files, the crt-list and the
// certificate files. It owns everything that is HAProxy's syntax: quoting
// object strings (quote.go), the lines of a backend's policy (backend.go)
// and canaries (canary.go), the runtime contract the planner relies on
// (contract.go: which maps change at runtime, server slot names), the
// provenance of a line (origin.go), and the dump and describe views of the
// output. It is pure like render: the same model gives the same bytes.
//
// Incremental pairs render.Engine with this package's cache of rendered
// parts; render never imports this package.
package haproxycfg
