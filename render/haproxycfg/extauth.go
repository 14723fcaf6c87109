package haproxycfg

import (
	_ "embed"
	"strings"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// External authentication (render.ExtAuthPolicy): a fixed Lua script asks
// the auth service, and the lines after its action decide, so that
// whatever the script does not finish (no server, no answer in time, a
// Lua error) is answered 500, never let through.

// ExtAuthScriptFile is the Lua script, relative to the configuration
// directory; it is written, and loaded by the template's global section,
// only when a backend asks an auth service.
const ExtAuthScriptFile = "lua/extauth.lua"

// ExtAuthAction is the action the script registers.
const ExtAuthAction = "lua.haproxy_sidecar_extauth"

//go:embed extauth.lua
var extAuthScript []byte

// ExtAuthScript returns the script's text.
func ExtAuthScript() []byte { return extAuthScript }

// usesExtAuth reports whether any backend runs the Lua action.
func usesExtAuth(m *render.Model) bool {
	for _, be := range m.Backends {
		if p := be.Policy; p != nil && p.ExtAuth != nil && len(p.Closed) == 0 && be.ExtAuthBackend != "" {
			return true
		}
	}
	return false
}

// luaMemory is tune.lua.maxmem, in MB: what Lua may hold. HAProxy's
// HTTP client reads an auth service's whole answer into Lua's memory, so
// the cap is what bounds an auth service that sends too much (its
// requests then fail: 500). HAProxy 2.6 also builds a Lua object for every
// server when it starts (measured: 64 MB was too little for 10,000
// backends of 4 slots, 80 MB enough), so the cap grows with the slots:
// 64 MB, plus 2 kB per server slot.
func luaMemory(m *render.Model) int {
	slots := 0
	for _, be := range m.Backends {
		slots += be.Slots
	}
	return 64 + (slots*2+1023)/1024
}

// extAuthRules writes a per-Ingress backend's external authentication.
func extAuthRules(be *render.Backend, d func(string, ...any)) {
	if be.ExtAuthBackend == "" {
		d("# The auth service of auth-url cannot be resolved (see the problems): every request is answered 500.")
		d("http-request deny deny_status 500")
		return
	}
	args := render.ExtAuthArgs(be.ExtAuthBackend, be.Policy.ExtAuth)
	for i, a := range args {
		args[i] = mustQuoteArg(a)
	}
	d("http-request %s %s", ExtAuthAction, strings.Join(args, " "))
	d("http-request redirect location %%[var(txn.extauth_location)] code 302 if { var(txn.extauth) -m str signin }")
	d("http-request return status 401 hdr WWW-Authenticate %%[var(txn.extauth_www)] if { var(txn.extauth) -m str 401 } { var(txn.extauth_www) -m found }")
	d("http-request deny deny_status 401 if { var(txn.extauth) -m str 401 }")
	d("http-request deny deny_status 403 if { var(txn.extauth) -m str 403 }")
	d("http-request deny deny_status 500 unless { var(txn.extauth) -m str ok }")
}
