package controller

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

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
	certs  []certOp
	// keepsIdle: the HAProxy updated keeps a server's idle connections
	// when its address changes (before 3.0), so an endpoint moved into a
	// serving slot goes through maintenance while another server of the
	// backend stays up (batch). Predict assumes so.
	keepsIdle bool
}

func reloadFor(cause Cause, detail string) plan {
	return plan{reload: true, cause: cause, detail: detail}
}

// batch is the plan's runtime API commands, as the master CLI is sent
// them: new and rotated certificates first (a route or TLS host entry
// that needs one finds it), then slots (an emptied slot goes to
// maintenance, then back to the placeholder address the file has for it),
// then map entries, and last the certificates no longer used.
func (p plan) batch() *reload.Batch {
	var b reload.Batch
	for _, op := range p.certs {
		switch op.kind {
		case certAdd:
			b.NewSSLCert(op.file)
			b.SetSSLCert(op.file, op.pem)
			b.CommitSSLCert(op.file)
			b.AddCrtList(haproxycfg.CrtListFile, op.file, op.sni)
		case certRotate:
			b.SetSSLCert(op.file, op.pem)
			b.CommitSSLCert(op.file)
		}
	}
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
		switch {
		case !op.serving:
			b.SetServerAddr(op.backend, op.server, op.addr, op.port)
			b.SetServerState(op.backend, op.server, reload.StateReady)
		case p.keepsIdle && op.othersUp:
			// HAProxy before 3.0 keeps a server's idle connections
			// across "set server addr" and sends later requests over
			// them to the endpoint that left the slot; going down
			// (maintenance) closes them, then the slot is ready again.
			// Only while another server of the backend stays up: a
			// backend whose only server is in maintenance answers 503.
			b.SetServerState(op.backend, op.server, reload.StateMaint)
			b.SetServerAddr(op.backend, op.server, op.addr, op.port)
			b.SetServerState(op.backend, op.server, reload.StateReady)
		default:
			// 3.0 closes them on the address change, and the slot is
			// ready already: one command, one master-to-worker round
			// trip.
			b.SetServerAddr(op.backend, op.server, op.addr, op.port)
		}
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
	for _, op := range p.certs {
		if op.kind == certRemove {
			b.DelCrtList(haproxycfg.CrtListFile, op.file)
			b.DelSSLCert(op.file)
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
	if haproxycfg.SameFiles(old, next) {
		return Prediction{Method: MethodNone}
	}
	p := diff(&state{model: oldModel, out: old}, &state{model: nextModel, out: next})
	p.keepsIdle = true
	if p.reload {
		return Prediction{Method: MethodReload, Cause: p.cause, Reason: p.detail}
	}
	return Prediction{Method: MethodRuntime, Commands: p.commands()}
}

func (p plan) runtimeOps() int { return len(p.maps) + len(p.slots) + len(p.certs) }

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
	// serving: the slot held an address, so HAProxy has it ready (and
	// may hold idle connections to it: plan.keepsIdle); othersUp: another
	// slot of the backend keeps its endpoint through the change.
	serving, othersUp bool
}

// certOp is one certificate changed at run time.
type certOp struct {
	kind certOpKind
	file string   // as the crt-list names it
	pem  []byte   // the chain and key (certAdd, certRotate)
	sni  []string // its crt-list line's names (certAdd)
}

type certOpKind int

const (
	// certAdd: a certificate HAProxy does not hold, and its crt-list line.
	certAdd certOpKind = iota
	// certRotate: another chain and key for a certificate HAProxy holds,
	// offered for the same names.
	certRotate
	// certRemove: a certificate whose line is gone: the line, then the
	// certificate.
	certRemove
)

// certChanges plans the certificates from old to next as runtime API
// commands (certOp), or says why only a reload applies them: a
// certificate offered for other names than before (its line would be
// deleted and added again, and handshakes in between would get the
// default certificate), a name offered by two lines (then the lines'
// order decides, which runtime additions do not keep), or a chain too
// large for a CLI payload.
func certChanges(old, next *haproxycfg.Output) ([]certOp, string) {
	var ops []certOp
	if !haproxycfg.SameCerts(old, next) {
		var why string
		if ops, why = crtListChanges(old, next); why != "" {
			return nil, why
		}
	}
	// The default certificate (the settings') is always loaded.
	if pem := next.Get(haproxycfg.DefaultCertFile); !bytes.Equal(old.Get(haproxycfg.DefaultCertFile), pem) {
		if !reload.PayloadFits(len(pem)) {
			return nil, fmt.Sprintf("%s holds %d bytes, more than a runtime API payload takes", haproxycfg.DefaultCertFile, len(pem))
		}
		ops = append(ops, certOp{kind: certRotate, file: haproxycfg.DefaultCertFile, pem: pem})
	}
	return ops, ""
}

// crtListChanges is certChanges for the crt-list's certificates.
func crtListChanges(old, next *haproxycfg.Output) ([]certOp, string) {
	was := map[string]haproxycfg.CrtEntry{}
	for _, e := range old.CrtEntries() {
		was[e.File] = e
	}
	var ops []certOp
	offered := map[string]string{}
	for _, e := range next.CrtEntries() {
		for _, name := range e.SNI {
			if other, dup := offered[name]; dup {
				return nil, fmt.Sprintf("%s and %s are both offered for %s", other, e.File, name)
			}
			offered[name] = e.File
		}
		o, held := was[e.File]
		delete(was, e.File)
		var op certOp
		switch {
		case !held:
			op = certOp{kind: certAdd, file: e.File, pem: e.PEM, sni: e.SNI}
		case !slices.Equal(o.SNI, e.SNI):
			return nil, fmt.Sprintf("%s is offered for other names (%s, was %s)", e.File, strings.Join(e.SNI, " "), strings.Join(o.SNI, " "))
		case !bytes.Equal(o.PEM, e.PEM):
			op = certOp{kind: certRotate, file: e.File, pem: e.PEM}
		default:
			continue
		}
		if !reload.PayloadFits(len(e.PEM)) {
			return nil, fmt.Sprintf("%s holds %d bytes, more than a runtime API payload takes", e.File, len(e.PEM))
		}
		ops = append(ops, op)
	}
	for _, file := range slices.Sorted(maps.Keys(was)) {
		ops = append(ops, certOp{kind: certRemove, file: file})
	}
	return ops, ""
}

// runtimeFile reports whether the runtime API changes what HAProxy reads
// from a file (the planner compares values for it, never its bytes):
// haproxy.cfg, the runtime maps, the crt-list and certificates.
func runtimeFile(path string, certFiles map[string]bool) bool {
	return path == haproxycfg.ConfigFile || path == haproxycfg.CrtListFile || path == haproxycfg.DefaultCertFile ||
		slices.Contains(haproxycfg.RuntimeMaps, path) || certFiles[path]
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
	// CA files, error pages and anything a template adds need a reload.
	certFiles := next.out.CertFiles()
	for f := range old.out.CertFiles() {
		certFiles[f] = true
	}
	for _, f := range next.out.Files {
		if runtimeFile(f.Path, certFiles) {
			continue
		}
		if !bytes.Equal(f.Data(), old.out.Get(f.Path)) || !hasFile(old.out, f.Path) {
			return reloadFor(CauseFileChanged, f.Path+" changed (map entries, server addresses and certificates change at run time)")
		}
	}
	for _, f := range old.out.Files {
		if !runtimeFile(f.Path, certFiles) && !hasFile(next.out, f.Path) {
			return reloadFor(CauseFilesRemoved, f.Path+" was removed")
		}
	}

	var p plan
	certs, why := certChanges(old.out, next.out)
	if why != "" {
		return reloadFor(CauseCertificates, why)
	}
	p.certs = certs
	if !haproxycfg.SameConfig(old.out, next.out) {
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
		if x.Spare && y.Spare && x.Name == y.Name && x.Slots == y.Slots {
			// A spare given to a Service or emptied: its slots and
			// the route map entries change, nothing else.
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
	othersUp := false // a slot keeps its endpoint
	for j := range min(len(was), len(now)) {
		if a := now[j].Addr; a.IsValid() && a == was[j].Addr {
			othersUp = true
			break
		}
	}
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
		op := slotOp{backend: backend, server: s.Name, serving: j < len(was) && was[j].Addr.IsValid(), othersUp: othersUp}
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

// hasFile reports whether out has a file at path (Files is sorted).
func hasFile(out *haproxycfg.Output, path string) bool {
	_, ok := slices.BinarySearchFunc(out.Files, path, func(f haproxycfg.File, p string) int { return strings.Compare(f.Path, p) })
	return ok
}
