package controller

import (
	"bytes"
	"slices"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// state is what was last made current: the model and the files rendered
// from it.
type state struct {
	model *render.Model
	out   *haproxycfg.Output
	// renderer counts template changes: output of other templates may
	// differ anywhere, so it always means a reload.
	renderer int
}

// plan says how to get HAProxy from one state to the next.
type plan struct {
	// reload is needed when anything but map entries and server slot
	// addresses changed; cause says why, detail in words (which file).
	reload bool
	cause  Cause
	detail string
	maps   []mapOp
	slots  []slotOp
}

func reloadFor(cause Cause, detail string) plan {
	return plan{reload: true, cause: cause, detail: detail}
}

// batch is the plan's runtime API commands, as the master CLI is sent
// them: slots first (an emptied slot goes to maintenance, then back to the
// placeholder address the file has for it), then map entries.
func (p plan) batch() *reload.Batch {
	var b reload.Batch
	for _, op := range p.slots {
		if op.fqdn != "" {
			b.SetServerFQDN(op.backend, op.server, op.fqdn)
			continue
		}
		if op.addr == "" {
			b.SetServerState(op.backend, op.server, reload.StateMaint)
			b.SetServerAddr(op.backend, op.server, haproxycfg.PlaceholderAddr, haproxycfg.PlaceholderPort)
			continue
		}
		b.SetServerAddr(op.backend, op.server, op.addr, op.port)
		b.SetServerState(op.backend, op.server, reload.StateReady)
	}
	for _, op := range p.maps {
		switch {
		case op.value == "":
			b.DelMap(op.file, op.key)
		case op.add:
			b.AddMap(op.file, op.key, op.value)
		default:
			b.SetMap(op.file, op.key, op.value)
		}
	}
	return &b
}

// commands are the plan's commands as they are sent (escaped), for
// history and diff.
func (p plan) commands() []string { return p.batch().Commands() }

// Method is how a change reaches HAProxy.
type Method string

const (
	// MethodNone: the files do not change.
	MethodNone Method = "none"
	// MethodRuntime: runtime API commands alone, no reload.
	MethodRuntime Method = "runtime"
	// MethodReload: a new generation and a reload.
	MethodReload Method = "reload"
)

// Prediction is how `run` would apply the change from one rendered output
// to another (the planner `run` uses, for `diff`).
type Prediction struct {
	Method Method
	// Cause is why a reload is needed; Reason says it in words.
	Cause  Cause
	Reason string
	// Commands are the runtime API commands of a runtime change.
	Commands []string
}

// Predict plans the change from old to next as `run` does when HAProxy
// runs old with the same templates.
func Predict(oldModel *render.Model, old *haproxycfg.Output, nextModel *render.Model, next *haproxycfg.Output) Prediction {
	if sameFiles(old, next) {
		return Prediction{Method: MethodNone}
	}
	p := diff(&state{model: oldModel, out: old}, &state{model: nextModel, out: next})
	if p.reload {
		return Prediction{Method: MethodReload, Cause: p.cause, Reason: p.detail}
	}
	return Prediction{Method: MethodRuntime, Commands: p.commands()}
}

func (p plan) runtimeOps() int { return len(p.maps) + len(p.slots) }

type mapOp struct {
	file  string // map name as HAProxy knows it (its path in the config)
	key   string
	value string // "" to delete
	add   bool   // key is new
}

type slotOp struct {
	backend, server string
	addr            string // IP, or "" to disable the slot
	port            int
	// fqdn, when set, is the name the slot's server resolves from now on
	// (an ExternalName backend's); addr and port are then unused.
	fqdn string
}

// diff plans the change from old to next. Without an old state (first run,
// or after a failure left HAProxy in an unknown state) it reloads.
func diff(old *state, next *state) plan {
	if old == nil {
		return reloadFor(CauseUnknownState, "what HAProxy runs is not known (first pass, or after a failure or restart)")
	}
	if old.renderer != next.renderer {
		return reloadFor(CauseTemplates, "the templates changed")
	}
	// Certificates, crt-list and anything a template adds need a reload.
	for _, f := range next.out.Files {
		if f.Path == haproxycfg.ConfigFile || slices.Contains(haproxycfg.RuntimeMaps, f.Path) {
			continue
		}
		if !bytes.Equal(f.Data, old.out.Get(f.Path)) {
			return reloadFor(CauseFileChanged, f.Path+" changed (only map entries and server addresses change at run time)")
		}
	}
	if len(old.out.Files) != len(next.out.Files) {
		return reloadFor(CauseFilesRemoved, "files were removed (a certificate no longer used)")
	}

	var p plan
	if oldCfg, nextCfg := old.out.Get(haproxycfg.ConfigFile), next.out.Get(haproxycfg.ConfigFile); !bytes.Equal(oldCfg, nextCfg) {
		// The configuration may differ only in server slot addresses:
		// the same backends with the same number of slots, and nothing
		// but the slots' addresses and states changed (settings, for
		// one, are elsewhere). The renderer answers both on values.
		if !sameSkeleton(old.model, next.model) {
			return reloadFor(CauseBackends, "backends were added or removed, or need more server slots")
		}
		if name, changed := externalNameChanged(old.model, next.model); changed {
			return reloadFor(CauseBackends, "backend "+name+" began or ceased to resolve a name, or resolves it on another port")
		}
		if !haproxycfg.SameBesideSlots(old.out, next.out) {
			return reloadFor(CauseConfigChanged, "haproxy.cfg changed beyond server addresses")
		}
		for i := range next.out.Backends() {
			if !haproxycfg.SameBackend(old.out, next.out, i) {
				p.slots = append(p.slots, slotChanges(old.out, next.out, i)...)
			}
		}
	}
	for _, name := range haproxycfg.RuntimeMaps {
		for _, c := range haproxycfg.MapChanges(name, old.out, next.out) {
			p.maps = append(p.maps, mapOp{file: name, key: c.Key, value: c.Value, add: c.Added})
		}
	}
	return p
}

// sameSkeleton is true when two models render the same configuration but
// for the servers inside the slots: everything the template sees except
// Backend.Servers is equal.
func sameSkeleton(a, b *render.Model) bool {
	if a.DefaultBackend != b.DefaultBackend || len(a.Backends) != len(b.Backends) {
		return false
	}
	for i := range a.Backends {
		x, y := a.Backends[i], b.Backends[i]
		if x == y {
			continue
		}
		if x.Name != y.Name || x.Slots != y.Slots || x.Namespace != y.Namespace || x.Service != y.Service ||
			x.Port != y.Port || x.PortName != y.PortName {
			return false
		}
	}
	return true
}

// slotChanges lists the slots of backend i whose endpoint changed: the
// renderer's slots (haproxycfg.Output.Slots) are exactly what the file
// holds, so after these changes HAProxy runs what the new file says.
func slotChanges(old, next *haproxycfg.Output, i int) []slotOp {
	_, was := old.Slots(i)
	backend, now := next.Slots(i)
	var ops []slotOp
	for j, s := range now {
		if s.FQDN != "" {
			// A name HAProxy resolves: a new one is sent as a name.
			if j >= len(was) || was[j].FQDN != s.FQDN {
				ops = append(ops, slotOp{backend: backend, server: s.Name, fqdn: s.FQDN})
			}
			continue
		}
		if j < len(was) && was[j].Addr == s.Addr {
			continue
		}
		if j >= len(was) && !s.Addr.IsValid() {
			continue
		}
		op := slotOp{backend: backend, server: s.Name}
		if s.Addr.IsValid() {
			op.addr, op.port = s.Addr.Addr().String(), int(s.Addr.Port())
		}
		ops = append(ops, op)
	}
	return ops
}

// externalNameChanged names a backend (of two models with the same
// skeleton) whose resolved port changed, or that began or ceased to
// resolve a name: what "set server ... fqdn" cannot do. A new name alone
// is a runtime change (slotChanges). Today such a backend also differs in
// its slots or its name (which holds the port), which sameSkeleton
// reloads for first; this keeps that so should the slots' shapes change.
func externalNameChanged(a, b *render.Model) (string, bool) {
	for i := range a.Backends {
		x, y := a.Backends[i], b.Backends[i]
		if x != y && (x.Resolves() != y.Resolves() || x.ExternalPort != y.ExternalPort || x.ExternalRefused != y.ExternalRefused) {
			return y.Name, true
		}
	}
	return "", false
}
