package haproxycfg

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"text/template"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// The runtime contract: what `run` may change in a running HAProxy
// without a reload, as values, so that the planner never parses rendered
// bytes back. The files render writes hold exactly these values.

// RuntimeMaps are the generated map files HAProxy changes at run time
// (add/set/del map), by the path HAProxy knows them by.
var RuntimeMaps = []string{ExactMapFile, PrefixMapFile, TLSHostsMapFile, CanaryMapFile}

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
			if r.Match == match && !r.Passthrough {
				entries[r.Key] = r.MapValue()
			}
		}
		return entries
	case CanaryMapFile:
		return canaryMapEntries(m)
	case TLSHostsMapFile:
		hosts := tlsMapHosts(m)
		entries := make(map[string]string, len(hosts))
		for _, h := range hosts {
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
		if lists.Same(old.model.Routes, next.model.Routes) {
			break // the engine hands out the same routes when none changed
		}
		a, b := old.routesOf[match], next.routesOf[match]
		if lists.Same(a, b) {
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
	case CanaryMapFile:
		if !old.model.CanaryFree() || !next.model.CanaryFree() {
			out = mapChanges(old.MapEntries(name), next.MapEntries(name))
		}
	case TLSHostsMapFile:
		a, b := tlsMapHosts(old.model), tlsMapHosts(next.model)
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

// The other half of the contract is the server slots: every backend
// section holds a fixed number of server lines, and the runtime API changes
// a slot's address and state (set server addr, set server state), nothing
// else in the file.

// ServerSlot is one server line of a backend section, as the runtime API
// addresses it.
type ServerSlot struct {
	// Name is SlotName of the slot's index.
	Name string
	// Addr is the endpoint the line holds; the zero value is an empty
	// slot, disabled at PlaceholderAddr:PlaceholderPort.
	Addr netip.AddrPort
	// FQDN is the name the line's server resolves (an ExternalName
	// backend's one slot; Addr is then zero): the runtime API changes it
	// with "set server ... fqdn", never to an address.
	FQDN string
}

// Backends is how many backend sections haproxy.cfg has (one per
// Model.Backends entry).
func (o *Output) Backends() int { return len(o.model.Backends) }

// Slots returns the name of backend i (Model.Backends order) and its server
// slots, as haproxy.cfg holds them: what the template writes is exactly
// this (backendData).
func (o *Output) Slots(i int) (backend string, slots []ServerSlot) {
	be := o.model.Backends[i]
	slots = make([]ServerSlot, be.Slots)
	for j := range slots {
		slots[j] = ServerSlot{Name: SlotName(j), Addr: be.SlotAddrs[j]}
	}
	if be.Resolves() {
		slots[0].FQDN = be.ExternalName
	}
	return be.Name, slots
}

// SameBackend is true when backend i of old and of next is the same
// backend: the same object (a backend is never changed once made), so its
// section and slots are the same too. The planner skips those.
func SameBackend(old, next *Output, i int) bool {
	return old.model.Backends[i] == next.model.Backends[i]
}

// SameBesideSlots reports whether haproxy.cfg of old and next is the same
// file but for what the runtime API changes: the addresses and states of
// server slots. Everything else, server options (checks, TLS, cookies)
// included, needs a reload. old and next have the same backends with the
// same number of slots (the caller checked), and come from the same
// template.
//
// The question is answered on values, never by reading the file back: the
// template's pieces (the head and tail around the backend sections) are
// compared as they came out of the template, and a backend section that
// differs is compared by its skeleton, the section rendered again with
// every server at one masked address and state. Where the template is the
// same and the backend's template data beside its slots is equal, the
// skeletons are too, and none is rendered: an endpoint change renders
// nothing more.
func SameBesideSlots(old, next *Output) bool {
	a, b := old.config, next.config
	if a == nil && b == nil {
		// A template that ranges over .Backends itself: the whole file's
		// skeletons.
		x, okx := old.skeleton.whole()
		y, oky := next.skeleton.whole()
		return okx && oky && bytes.Equal(x, y)
	}
	if a == nil || b == nil {
		return false
	}
	as, bs := a.Sections(), b.Sections()
	if len(as) != len(bs) {
		return false
	}
	if !bytes.Equal(a.Head, b.Head) || !bytes.Equal(a.Tail, b.Tail) {
		return false
	}
	for i := range as {
		if lists.Same(as[i], bs[i]) || bytes.Equal(as[i], bs[i]) {
			continue
		}
		x, y := old.model.Backends[i], next.model.Backends[i]
		if old.skeleton.tmpl == next.skeleton.tmpl && sameBesideSlots(x, y) {
			continue
		}
		sx, okx := old.skeleton.section(x)
		sy, oky := next.skeleton.section(y)
		if !okx || !oky || !bytes.Equal(sx, sy) {
			return false
		}
	}
	return true
}

// sameBesideSlots is true when two backends give the template the same
// data (backendData) but for their slots' addresses: sameSection without
// SlotAddrs.
func sameBesideSlots(a, b *render.Backend) bool {
	if a.Spare && b.Spare {
		// The Service a spare serves is only in its comment, which its
		// skeleton masks (maskSlots).
		return a.Name == b.Name && a.Slots == b.Slots && samePolicy(a, b)
	}
	return a.Name == b.Name && a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port &&
		a.PortName == b.PortName && a.Slots == b.Slots && samePolicy(a, b)
}

// maskedAddress is every server's address in a skeleton: no validated
// value contains a NUL, so no endpoint reads the same.
const maskedAddress = "\x00haproxy-sidecar:slot\x00"

// maskSlots gives every server of bd the masked address and one state
// (enabled), keeping its name and id, which the runtime API cannot change.
// A server that resolves a name gets the masked name, its port kept (the
// runtime's "set server fqdn" changes the name, and the planner reloads
// for a new port), and so does the name in the section's comment.
func maskSlots(bd *BackendData) {
	for i := range bd.Servers {
		if s := &bd.Servers[i]; s.resolved {
			_, port, _ := strings.Cut(s.Address, ":")
			s.Address = maskedAddress + ":" + port
			continue
		}
		bd.Servers[i].Address, bd.Servers[i].Disabled = maskedAddress, false
	}
	if bd.ExternalName != "" {
		bd.ExternalName = maskedAddress
	}
	if bd.Spare {
		// Which Service a spare serves is only in the section's comment:
		// the runtime API gives a spare to a Service (its slots and the
		// route map entries), so skeletons leave the Service out.
		bd.Namespace, bd.Service, bd.Port, bd.PortName, bd.OwnName = "", "", 0, "", ""
	}
}

// skeleton renders an output's haproxy.cfg, or one backend section of it,
// again with the server slots masked (maskSlots), when the planner needs
// it; the whole file's is kept, being the costly one.
type skeleton struct {
	tmpl *template.Template
	data TemplateData

	once sync.Once
	all  []byte
	ok   bool
}

// whole is haproxy.cfg's skeleton, for a template that prints no
// .BackendSections. ok is false on an error, which cannot happen where
// the same template rendered the file (and then means a reload).
func (s *skeleton) whole() (data []byte, ok bool) {
	s.once.Do(func() {
		data := s.data
		data.maskSlots = true
		var buf bytes.Buffer
		if s.tmpl.Execute(&buf, data) == nil {
			s.all, s.ok = buf.Bytes(), true
		}
	})
	return s.all, s.ok
}

// section is the skeleton of be's backend section; ok as for whole.
func (s *skeleton) section(be *render.Backend) (data []byte, ok bool) {
	bt := s.tmpl.Lookup(BackendTemplate)
	if bt == nil {
		return nil, false
	}
	bd := backendData(be)
	maskSlots(&bd)
	var buf bytes.Buffer
	if bt.Execute(&buf, bd) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// CrtEntry is a certificate as HAProxy holds it through the crt-list: the
// file its line names, the SNI names the line lists, and the PEM it
// loads. A certificate of the model without a line (crtListSNI) is not
// loaded at all, and has no entry.
type CrtEntry struct {
	File string
	SNI  []string
	PEM  []byte
}

// CrtEntries are the crt-list's lines, in the file's order: what
// `add/del ssl crt-list` and `set ssl cert` change at run time.
func (o *Output) CrtEntries() []CrtEntry {
	certs := o.model.Certs
	var out []CrtEntry
	for i, sni := range o.crtSNI {
		if len(sni) > 0 {
			out = append(out, CrtEntry{File: certs[i].File, SNI: sni, PEM: certs[i].PEM})
		}
	}
	return out
}

// CertFiles are the files of the model's certificates (Model.Certs),
// offered or not: each is written as its CrtEntry's PEM says, so the
// planner compares entries, not these files.
func (o *Output) CertFiles() map[string]bool {
	out := make(map[string]bool, len(o.model.Certs))
	for i := range o.model.Certs {
		out[o.model.Certs[i].File] = true
	}
	return out
}

// SameCerts is true when old and next have the same certificates: the
// engine hands out the same slice while none changes, so a route or
// endpoint change does not read a thousand certificates.
func SameCerts(old, next *Output) bool { return lists.Same(old.model.Certs, next.model.Certs) }
