package render

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// TCP services (--tcp-services-configmap), like ingress-nginx's
// tcp-services ConfigMap: each key is a port HAProxy listens on in TCP
// mode, each value the Service port its connections go to,
// "namespace/name:port", optionally followed by ":PROXY" (the listener
// expects the PROXY protocol) and ":PROXY" (the backend is sent it):
// "namespace/name:port:[PROXY]:[PROXY]". The platform team writes this
// ConfigMap, not a tenant, so it may name a Service of any namespace, as
// in ingress-nginx. Each entry becomes a frontend of its own and a backend
// in Model.Backends with server slots, so that endpoints come and go
// through the runtime API as for HTTP backends.

// TCPService is one entry of the TCP services ConfigMap that is served.
type TCPService struct {
	// Port is the port HAProxy listens on (the ConfigMap key).
	Port int
	// Backend is the name of its backend in Model.Backends (TCPBackendName).
	Backend string
	// Service is the Service port as the entry names it.
	Service ServiceRef
	// AcceptProxy: connections must begin with a PROXY header (v1 or v2),
	// whose address is the client's (the third field is PROXY).
	AcceptProxy bool
	// SendProxy: every connection to an endpoint begins with a PROXY v1
	// header naming the client (the fourth field is PROXY).
	SendProxy bool
	// ConfigMap is the ConfigMap (namespace/name) and Key the key the
	// entry comes from.
	ConfigMap, Key string
}

// ReservedPort is a port another listener of the load balancer uses (the
// HTTP and HTTPS frontends, the stats frontend, the sidecar's admin
// listeners); a TCP service on it is refused.
type ReservedPort struct {
	// Name says what listens there, for the problem ("stats", "admin").
	// The ports named ListenerHTTP and ListenerHTTPS are replaced by the
	// settings' http-port and https-port when those are set.
	Name string
	Port int
}

// Names of the reserved ports the settings ConfigMap can move.
const (
	ListenerHTTP  = "http"
	ListenerHTTPS = "https"
)

// TCPBackendName is the backend of the TCP service on port: a name no
// Service port's backend (namespace_service_port) can have.
func TCPBackendName(port int) string { return "_tcp_" + strconv.Itoa(port) }

// ParseTCPServicesRef checks a TCP services ConfigMap reference
// "namespace/name".
func ParseTCPServicesRef(ref string) (namespace, name string, err error) {
	return ParseSettingsRef(ref)
}

// parseTCPServiceKey reads a key: a port from 1 to 65535, written as
// HAProxy and Kubernetes print it (no sign, no leading zero), so that two
// keys never name the same port.
func parseTCPServiceKey(key string) (int, error) {
	n, err := strconv.Atoi(key)
	if err != nil || strconv.Itoa(n) != key {
		return 0, fmt.Errorf("the key must be a port number from 1 to 65535 without leading zeros")
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is not from 1 to 65535", n)
	}
	return n, nil
}

// ParseTCPServiceValue reads a value, "namespace/name:port" with
// ingress-nginx's optional third and fourth fields: "PROXY" (any case) or
// empty. The port is the Service port's number or name.
func ParseTCPServiceValue(v string) (ref ServiceRef, acceptProxy, sendProxy bool, err error) {
	const want = "want namespace/name:port[:[PROXY][:[PROXY]]]"
	fields := strings.Split(strings.TrimSpace(v), ":")
	if len(fields) < 2 || len(fields) > 4 {
		return ServiceRef{}, false, false, fmt.Errorf("%q: %s", v, want)
	}
	ns, name, ok := strings.Cut(fields[0], "/")
	if !ok {
		return ServiceRef{}, false, false, fmt.Errorf("%q: %s", v, want)
	}
	if err := validateNamespace(ns); err != nil {
		return ServiceRef{}, false, false, fmt.Errorf("%q: %w", v, err)
	}
	if err := validateServiceName(name); err != nil {
		return ServiceRef{}, false, false, fmt.Errorf("%q: Service name %w", v, err)
	}
	port := fields[1]
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return ServiceRef{}, false, false, fmt.Errorf("%q: Service port %q is not a number from 1 to 65535", v, port)
		}
	} else if err := validatePortName(port); err != nil {
		return ServiceRef{}, false, false, fmt.Errorf("%q: Service port %w", v, err)
	}
	flag := func(i int) (bool, error) {
		if i >= len(fields) || fields[i] == "" {
			return false, nil
		}
		if strings.EqualFold(fields[i], "PROXY") {
			return true, nil
		}
		return false, fmt.Errorf("%q: field %d is %q; only PROXY or nothing is allowed there", v, i+1, fields[i])
	}
	if acceptProxy, err = flag(2); err != nil {
		return ServiceRef{}, false, false, err
	}
	if sendProxy, err = flag(3); err != nil {
		return ServiceRef{}, false, false, err
	}
	return ServiceRef{Namespace: ns, Name: name, Port: port}, acceptProxy, sendProxy, nil
}

// reservedPorts are the ports of the other listeners, with the settings'
// http-port and https-port applied.
func (b *builder) reservedPorts() []ReservedPort {
	out := slices.Clone(b.opts.ReservedPorts)
	s := b.m.Settings
	for i := range out {
		switch {
		case out[i].Name == ListenerHTTP && s.HTTPPort != 0:
			out[i].Port = s.HTTPPort
		case out[i].Name == ListenerHTTPS && s.HTTPSPort != 0:
			out[i].Port = s.HTTPSPort
		}
	}
	return out
}

// useTCPServices reads the TCP services ConfigMap into m.TCPServices and
// puts their backends into m.Backends (sorted; shared, so changed on a
// copy). prev are the TCP backends this returned last time, by name: one
// that is made again equal is kept, so that the renderer and the planner
// see the same backend. Every problem names the ConfigMap and key; a bad
// entry is skipped and never affects the others. Its problems are added
// to m in the order of the keys, after every other one of the objects
// they name.
func (b *builder) useTCPServices(m *Model, configMaps []*corev1.ConfigMap, prev map[string]*Backend) map[string]*Backend {
	ref := b.opts.TCPServicesConfigMap
	if ref == "" {
		return nil
	}
	var problems []Problem
	b.capture = &problems
	defer func() {
		b.capture = nil
		for _, p := range problems {
			if !b.reported[p] {
				b.reported[p] = true
				m.Problems = append(m.Problems, p)
			}
		}
	}()
	ns, name, err := ParseTCPServicesRef(ref)
	if err != nil {
		b.reporter("ConfigMap", "", "").warn("", TCPServicesRefInvalid, "--tcp-services-configmap %v; no TCP service is served", err)
		return nil
	}
	r := b.reporter("ConfigMap", ns, name)
	var cm *corev1.ConfigMap
	for _, c := range configMaps {
		if c.Namespace == ns && c.Name == name {
			cm = c
			break
		}
	}
	if cm == nil {
		r.notice("", TCPServicesNotFound, "TCP services ConfigMap not found; no TCP service is served")
		return nil
	}
	for _, key := range slices.Sorted(maps.Keys(cm.BinaryData)) {
		r.warn(dataField("binaryData", key), TCPServiceInvalid, "TCP services are read from data only; ignored")
	}
	reserved := b.reservedPorts()
	made := map[string]*Backend{}
	var added []*Backend
	for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
		field := dataField("data", key)
		port, err := parseTCPServiceKey(key)
		if err != nil {
			r.warn(field, TCPServiceInvalid, "%v; entry skipped", err)
			continue
		}
		svcRef, acceptProxy, sendProxy, err := ParseTCPServiceValue(cm.Data[key])
		if err != nil {
			r.warn(field, TCPServiceInvalid, "%v; entry skipped", err)
			continue
		}
		if i := slices.IndexFunc(reserved, func(p ReservedPort) bool { return p.Port == port }); i >= 0 {
			r.warn(field, TCPServicePortConflict, "port %d is the %s listener's; entry skipped", port, reserved[i].Name)
			continue
		}
		be, ok := b.tcpBackend(r, field, port, svcRef, sendProxy)
		if !ok {
			continue
		}
		if p := prev[be.Name]; p != nil && sameBackend(p, be) {
			be = p
		}
		made[be.Name] = be
		added = append(added, be)
		m.TCPServices = append(m.TCPServices, TCPService{Port: port, Backend: be.Name, Service: svcRef,
			AcceptProxy: acceptProxy, SendProxy: sendProxy, ConfigMap: ns + "/" + name, Key: key})
	}
	if len(added) > 0 {
		bes := make([]*Backend, 0, len(m.Backends)+len(added))
		bes = append(bes, m.Backends...)
		bes = append(bes, added...)
		slices.SortFunc(bes, func(x, y *Backend) int { return cmp.Compare(x.Name, y.Name) })
		m.Backends = bes
	}
	return made
}

// tcpBackend resolves a TCP service's Service port to its backend; false
// when the Service or its port cannot be used (reported on the entry).
func (b *builder) tcpBackend(r reporter, field string, port int, ref ServiceRef, sendProxy bool) (*Backend, bool) {
	svc := b.services[ref.Namespace+"/"+ref.Name]
	if svc == nil {
		r.warn(field, TCPServiceUnusable, "Service %s/%s not found; entry skipped", ref.Namespace, ref.Name)
		return nil, false
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		r.warn(field, TCPServiceUnusable, "Service %s/%s is of type ExternalName, which TCP services do not support; entry skipped", ref.Namespace, ref.Name)
		return nil, false
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Name == ref.Port || strconv.Itoa(int(p.Port)) == ref.Port {
			sp = p
			break
		}
	}
	if sp == nil || (sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP) {
		r.warn(field, TCPServiceUnusable, "Service %s/%s has no TCP port %q; entry skipped", ref.Namespace, ref.Name, ref.Port)
		return nil, false
	}
	name := TCPBackendName(port)
	servers := b.readyEndpoints(b.slices[svc.Namespace+"/"+svc.Name], sp)
	n := ServerSlots(len(servers))
	be := &Backend{Name: name, Namespace: svc.Namespace, Service: svc.Name, Port: sp.Port, PortName: sp.Name,
		Servers: servers, Slots: n, SlotAddrs: assignSlots(servers, n, b.previousSlots(name)),
		TCP: true, SendProxy: sendProxy}
	if len(servers) == 0 {
		r.notice(field, NoEndpoints, "Service %s/%s port %d has no ready endpoints; connections are closed until it has", ref.Namespace, ref.Name, sp.Port)
	}
	return be, true
}
