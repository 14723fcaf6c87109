package render

import (
	"maps"
	"strconv"
)

// A namespace's userlists together may add at most
// authNamespaceBudgetMicros to every parse of the configuration. The
// per-Ingress budget (authParseBudgetMicros) alone would let one tenant's
// many Ingresses add seconds to every check and reload, every tenant's
// changes waiting behind them, until the check's deadline rejected every
// configuration. The budget is per namespace, never shared: whatever one
// namespace holds, another's users are not cut. With the default deadline
// (20 s for haproxy -c) it takes tens of namespaces at their budget, which
// tenants do not create themselves, to get near it.
const authNamespaceBudgetMicros = 1_000_000

// authBudget applies the namespace budget to the sorted backends: within
// a namespace, backends are charged in name order, and one whose users
// would go over what is left gets none (every request to its routes is
// answered 401), reported on its Ingress. cut keeps the replacement made
// for each original backend from one build to the next, so that an
// unchanged backend stays the same pointer (the section cache and the
// planner compare pointers); only the entries used again are kept. It
// returns the backends to serve, a copy only when one is cut.
func authBudget(bes []*Backend, cut map[*Backend]*Backend) ([]*Backend, []Problem) {
	var spent map[string]int64
	var out []*Backend
	var problems []Problem
	var next map[*Backend]*Backend // nothing allocated while nothing is cut
	for i, be := range bes {
		if len(be.Users) == 0 {
			continue
		}
		var cost int64
		for _, u := range be.Users {
			cost += u.Micros
		}
		if spent == nil {
			spent = map[string]int64{}
		}
		if spent[be.Namespace]+cost <= authNamespaceBudgetMicros {
			spent[be.Namespace] += cost
			continue
		}
		r := cut[be]
		if r == nil {
			c := *be
			c.Users = nil
			r = &c
		}
		if next == nil {
			next = map[*Backend]*Backend{}
		}
		next[be] = r
		if out == nil {
			out = append([]*Backend(nil), bes...)
		}
		out[i] = r
		problems = append(problems, Problem{Severity: Warning,
			ObjectRef: ObjectRef{Kind: "Ingress", Namespace: be.Namespace, Name: be.Ingress}, Field: "metadata.annotations", Reason: AuthSecretTooCostly,
			Message: "the auth-basic-secret users of backend " + be.Name + " would bring what the userlists of namespace " + be.Namespace +
				" add to every HAProxy start and reload over " + strconv.Itoa(authNamespaceBudgetMicros/1000) +
				" ms; every request to its routes gets 401 until the namespace has fewer users or cheaper hashes"})
	}
	if len(cut)+len(next) > 0 {
		clear(cut)
		maps.Copy(cut, next)
	}
	if out == nil {
		return bes, nil
	}
	return out, problems
}
