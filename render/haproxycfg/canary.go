package haproxycfg

import (
	"slices"
	"strconv"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// CanaryGroup is one pair of primary and canary backends, with the
// frontend rules that choose between them.
type CanaryGroup struct {
	// Key is the routes' map value (CanaryKey).
	Key             string
	Primary, Canary string
	Origin          render.Origin // the canary Ingress (its first path on a route)
	Rule            *render.CanaryRule
	Rules           []string // http-request lines, in order
}

// CanaryGroups lists the pairs of backends the routes' canaries make,
// sorted by Key.
func CanaryGroups(m *render.Model) []CanaryGroup {
	if m.CanaryFree() {
		return nil
	}
	var out []CanaryGroup
	seen := map[string]bool{}
	for _, r := range m.Routes {
		if r.Canary == nil {
			continue
		}
		key := r.MapValue()
		if seen[key] {
			continue
		}
		seen[key] = true
		g := CanaryGroup{Key: key, Primary: r.Backend, Canary: r.Canary.Backend, Origin: r.Canary.Origin, Rule: r.Canary.Rule}
		if !failClosed(func() { g.Rules = canaryRules(key, r.Backend, r.Canary.Backend, r.Canary.Rule) }) {
			// Unreachable while the rule is parsed: the primary only.
			g.Rules = canaryRules(key, r.Backend, r.Canary.Backend, &render.CanaryRule{WeightTotal: 100})
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(x, y CanaryGroup) int { return strings.Compare(x.Key, y.Key) })
	return out
}

// canaryRules are the frontend lines that turn the map value key into the
// canary or the primary backend, in ingress-nginx's order: header, cookie,
// weight. Header and cookie names are checked (setCanaryName) to need
// no quoting; the header value is quoted.
func canaryRules(key, primary, canary string, rule *render.CanaryRule) []string {
	on := "{ var(txn.backend) -m str " + key + " }"
	toCanary := "http-request set-var(txn.backend) str(" + canary + ") if " + on + " "
	toPrimary := "http-request set-var(txn.backend) str(" + primary + ") if " + on
	var out []string
	if h := rule.Header; h != "" {
		if v := rule.HeaderValue; v != "" {
			out = append(out, toCanary+"{ req.hdr("+h+") -m str "+mustQuoteArg(v)+" }")
		} else {
			out = append(out, toCanary+"{ req.hdr("+h+") -m str always }",
				toPrimary+" { req.hdr("+h+") -m str never }")
		}
	}
	if c := rule.Cookie; c != "" {
		out = append(out, toCanary+"{ req.cook("+c+") -m str always }",
			toPrimary+" { req.cook("+c+") -m str never }")
	}
	if rule.Weight > 0 {
		if rule.Weight >= rule.WeightTotal {
			out = append(out, strings.TrimSuffix(toCanary, " "))
		} else {
			out = append(out, toCanary+"{ rand("+strconv.Itoa(rule.WeightTotal)+") -m int lt "+strconv.Itoa(rule.Weight)+" }")
		}
	}
	return append(out, toPrimary)
}
