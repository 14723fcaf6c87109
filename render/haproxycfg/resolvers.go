package haproxycfg

import (
	"strconv"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// ResolversData is the resolvers section the servers of ExternalName
// backends name (render.ResolversName). Its timings are fixed and
// documented (README, "ExternalName Services"): HAProxy asks every name
// again every ResolveEvery, and keeps the last address through errors
// (NXDOMAIN, refused, timeouts) for HoldInvalid.
type ResolversData struct {
	Name string
	// Nameservers are "ns<i> <address:port>" words, from the
	// dns-nameservers setting; empty: ParseResolvConf.
	Nameservers []NameserverData
	// ParseResolvConf reads the nameservers of the pod's /etc/resolv.conf
	// when HAProxy starts.
	ParseResolvConf bool
	// Timings in HAProxy's time format.
	ResolveEvery, Retry, HoldInvalid, HoldObsolete string
	Retries                                        int
}

// NameserverData is one nameserver line.
type NameserverData struct{ Name, Address string }

// resolversData is the section when a backend of m resolves a name, nil
// otherwise: a configuration without ExternalName backends is the same
// as before they existed, and resolves nothing.
func resolversData(m *render.Model) *ResolversData {
	used := false
	for _, be := range m.Backends {
		if be.Resolves() {
			used = true
			break
		}
	}
	if !used {
		return nil
	}
	ms := func(n int) string { return strconv.Itoa(n) + "ms" }
	r := &ResolversData{Name: render.ResolversName, ResolveEvery: ms(render.ResolveEvery), Retry: ms(render.ResolveRetry),
		HoldInvalid: ms(render.HoldInvalid), HoldObsolete: ms(render.HoldObsolete), Retries: render.ResolveRetries}
	for i, ns := range m.Settings.DNSNameservers {
		r.Nameservers = append(r.Nameservers, NameserverData{Name: "ns" + strconv.Itoa(i+1), Address: ns.String()})
	}
	r.ParseResolvConf = len(r.Nameservers) == 0
	return r
}
