package haproxycfg

import (
	"fmt"
	"maps"
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
	// MapValue is the pair's CanaryMapFile entry.
	MapValue string
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
		if !failClosed(func() {
			g.Rules = canaryRules(key, r.Backend, r.Canary.Backend, r.Canary.Rule)
			g.MapValue = canaryMapValue(r.Canary.Rule)
		}) {
			// Unreachable while the rule is parsed: the primary only.
			closed := &render.CanaryRule{WeightTotal: 100}
			g.Rules, g.MapValue = canaryRules(key, r.Backend, r.Canary.Backend, closed), canaryMapValue(closed)
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(x, y CanaryGroup) int { return strings.Compare(x.Key, y.Key) })
	return out
}

// CanaryMapFile is render.CanaryMapFile: per canary pair (its routes' map
// value), "<weight>|<header value>". The frontend reads both from it into
// txn.canary_w and txn.canary_hv, so that a new weight or header value is
// a runtime "set map", never a reload: progressive delivery steps a
// canary's weight every few seconds.
const CanaryMapFile = render.CanaryMapFile

// canaryMapValue is a pair's entry in CanaryMapFile. Header values hold
// none of '|', space or control characters (canaryValueChars); one that
// does, a parser's bug, panics as unquotable so that the pair fails closed
// (CanaryGroups), never a map line another line could be read from.
func canaryMapValue(rule *render.CanaryRule) string {
	if v := rule.HeaderValue; strings.ContainsAny(v, "| \t#") {
		panic(unquotable{fmt.Errorf("canary header value %q cannot be a map value", v)})
	}
	if _, err := quoteArg(rule.HeaderValue + "x"); err != nil {
		panic(unquotable{err})
	}
	return strconv.Itoa(rule.Weight) + "|" + rule.HeaderValue
}

// canaryMapEntries are CanaryMapFile's entries.
func canaryMapEntries(m *render.Model) map[string]string {
	groups := CanaryGroups(m)
	if len(groups) == 0 {
		return nil
	}
	out := make(map[string]string, len(groups))
	for _, g := range groups {
		out[g.Key] = g.MapValue
	}
	return out
}

// canaryMap writes CanaryMapFile, nil without canaries.
func canaryMap(m *render.Model) []byte {
	entries := canaryMapEntries(m)
	if entries == nil {
		return nil
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		b.WriteString(k + " " + entries[k] + "\n")
	}
	return []byte(b.String())
}

// canaryRules are the frontend lines that turn the map value key into the
// canary or the primary backend, in ingress-nginx's order: header, cookie,
// weight. Header and cookie names are checked (setCanaryName) to need
// no quoting. The header value and the weight are not in them: they come
// from CanaryMapFile (txn.canary_hv, txn.canary_w), so the lines stay the
// same when either changes; the weight line is there even at weight 0.
func canaryRules(key, primary, canary string, rule *render.CanaryRule) []string {
	on := "{ var(txn.backend) -m str " + key + " }"
	toCanary := "http-request set-var(txn.backend) str(" + canary + ") if " + on + " "
	toPrimary := "http-request set-var(txn.backend) str(" + primary + ") if " + on
	var out []string
	if h := rule.Header; h != "" {
		if rule.HeaderValue != "" {
			out = append(out, toCanary+"{ req.hdr("+h+"),strcmp(txn.canary_hv) eq 0 }")
		} else {
			out = append(out, toCanary+"{ req.hdr("+h+") -m str always }",
				toPrimary+" { req.hdr("+h+") -m str never }")
		}
	}
	if c := rule.Cookie; c != "" {
		out = append(out, toCanary+"{ req.cook("+c+") -m str always }",
			toPrimary+" { req.cook("+c+") -m str never }")
	}
	// rand(total) - weight < 0: weight of total requests; all of them at
	// weight >= total, none at 0.
	out = append(out, toCanary+"{ rand("+strconv.Itoa(rule.WeightTotal)+"),sub(txn.canary_w) -m int lt 0 }")
	return append(out, toPrimary)
}
