package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The controller-wide default backend (--default-backend-service): the
// Service that answers requests no rule matches when no Ingress's
// spec.defaultBackend is used, instead of the built-in 404. The operator
// names it, so it may be in any namespace; it gets no Ingress's backend
// annotations unless an Ingress routes to the same Service port too (the
// backend is then that one).

// ParseDefaultService checks a --default-backend-service value:
// namespace/name, or namespace/name:port (a number or a port name).
func ParseDefaultService(v string) (ServiceRef, error) {
	ns, rest, ok := strings.Cut(v, "/")
	if !ok {
		return ServiceRef{}, fmt.Errorf("%q: want namespace/name or namespace/name:port", v)
	}
	name, port, _ := strings.Cut(rest, ":")
	if err := validateNamespace(ns); err != nil {
		return ServiceRef{}, fmt.Errorf("%q: %w", v, err)
	}
	if err := validateServiceName(name); err != nil {
		return ServiceRef{}, fmt.Errorf("%q: Service name %w", v, err)
	}
	if strings.Contains(rest, ":") {
		if n, err := strconv.Atoi(port); err == nil {
			if n < 1 || n > 65535 {
				return ServiceRef{}, fmt.Errorf("%q: port %d is not from 1 to 65535", v, n)
			}
		} else if err := validatePortName(port); err != nil {
			return ServiceRef{}, fmt.Errorf("%q: port %w", v, err)
		}
	}
	return ServiceRef{Namespace: ns, Name: name, Port: port}, nil
}

// defaultService resolves the --default-backend-service Service to its
// backend: the name, and the backend when existing (the backends made
// for routes, by name) has none of that name. Its problems are returned,
// not added: both builds put them in place.
func (b *builder) defaultService(existing func(string) bool) (string, *Backend, []Problem) {
	ref := b.opts.DefaultService
	if ref == nil {
		return NotFoundBackend, nil, nil
	}
	var problems []Problem
	b.capture = &problems
	defer func() { b.capture = nil }()
	r := b.reporter("Service", ref.Namespace, ref.Name)
	svc := b.services[ref.Namespace+"/"+ref.Name]
	if svc == nil {
		r.warn("", DefaultServiceUnusable, "--default-backend-service: Service %s/%s not found; requests no rule matches get 503", ref.Namespace, ref.Name)
		return UnavailableBackend, nil, problems
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if ref.Port == "" || p.Name == ref.Port || strconv.Itoa(int(p.Port)) == ref.Port {
			sp = p
			break
		}
	}
	external := svc.Spec.Type == corev1.ServiceTypeExternalName
	if external && sp == nil {
		// A number is connected to as it is, listed or not (the Ingress
		// spec's rule for an ExternalName Service).
		if n, err := strconv.Atoi(ref.Port); err == nil {
			sp = &corev1.ServicePort{Port: int32(n)}
		}
	}
	if sp == nil || (sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP) {
		r.warn("spec.ports", DefaultServiceUnusable, "--default-backend-service: no TCP port %q; requests no rule matches get 503", ref.Port)
		return UnavailableBackend, nil, problems
	}
	name := backendName(svc.Namespace, svc.Name, sp.Port)
	if existing(name) {
		return name, nil, problems
	}
	if external {
		be, err := externalBackendOf(name, svc, sp.Port, sp.Name)
		if err != nil {
			r.warn("spec.externalName", InvalidExternalName, "--default-backend-service: %v; requests no rule matches get 503", err)
		}
		return name, be, problems
	}
	servers := b.readyEndpoints(b.slices[svc.Namespace+"/"+svc.Name], sp)
	n := ServerSlots(len(servers))
	be := &Backend{Name: name, Namespace: svc.Namespace, Service: svc.Name, Port: sp.Port, PortName: sp.Name,
		Servers: servers, Slots: n, SlotAddrs: assignSlots(servers, n, b.previousSlots(name))}
	if len(servers) == 0 {
		r.notice("", NoEndpoints, "--default-backend-service: port %d has no ready endpoints; answering 503 until it has", sp.Port)
	}
	return name, be, problems
}

// useDefaultService puts the --default-backend-service backend into m
// when no Ingress's spec.defaultBackend is used. backends are m's sorted
// backends (shared: changed on a copy); prev is the backend this returned
// last time, kept when nothing of it changed.
func (b *builder) useDefaultService(m *Model, prev *Backend) *Backend {
	if m.DefaultOrigin != nil || b.opts.DefaultService == nil {
		return nil
	}
	find := func(name string) (int, bool) {
		return slices.BinarySearchFunc(m.Backends, name, func(be *Backend, n string) int { return strings.Compare(be.Name, n) })
	}
	name, be, problems := b.defaultService(func(n string) bool { _, ok := find(n); return ok })
	m.DefaultBackend, m.DefaultService = name, b.opts.DefaultService
	m.Problems = append(m.Problems, problems...)
	if be == nil {
		return nil
	}
	if prev != nil && sameBackend(prev, be) {
		be = prev
	}
	i, _ := find(name)
	m.Backends = slices.Insert(slices.Clone(m.Backends), i, be)
	return be
}

// sameBackend reports whether a backend made again equals the one made
// before (a default service's or a TCP service's, which have no settings
// of their own).
func sameBackend(a, b *Backend) bool {
	return a.TCP == b.TCP && a.SendProxy == b.SendProxy && a.Name == b.Name && a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port &&
		a.PortName == b.PortName && a.Slots == b.Slots && slices.Equal(a.Servers, b.Servers) && slices.Equal(a.SlotAddrs, b.SlotAddrs) &&
		a.ExternalName == b.ExternalName && a.ExternalPort == b.ExternalPort && a.ExternalRefused == b.ExternalRefused
}
