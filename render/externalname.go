package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
	corev1 "k8s.io/api/core/v1"
)

// ExternalName Services: a backend whose one server is the Service's
// spec.externalName, resolved by HAProxy's own resolvers while it runs
// (haproxycfg writes the resolvers section and the server line). The
// sidecar never resolves the name itself: what HAProxy connects to is
// what the DNS answers HAProxy, now, not what it answered the sidecar
// when it rendered.

// ResolversName is the name of the resolvers section the servers of
// ExternalName backends use.
const ResolversName = "sidecar_dns"

// Re-resolution of ExternalName backends, as the resolvers section sets
// it (haproxycfg): a name is asked again every ResolveEvery; an answer
// that is an error (NXDOMAIN, a refusal, a timeout after
// ResolveRetries tries ResolveRetry apart) takes the server out only
// when no valid answer came within HoldInvalid: a short DNS outage
// keeps the last address, a name that is gone stops being served after
// HoldInvalid. An address the answer no longer has is dropped after
// HoldObsolete: HAProxy's default, 30 s, kept the server on the old
// address for 30 s after the DNS had moved it (measured with both
// versions in TestExternalNameThroughResolvers).
const (
	ResolveEvery   = 5_000  // ms: timeout resolve, and hold valid
	ResolveRetry   = 1_000  // ms: timeout retry
	ResolveRetries = 3      // resolve_retries
	HoldInvalid    = 30_000 // ms: hold nx, refused, timeout, other
	HoldObsolete   = 0      // ms: hold obsolete
)

// maxNameservers bounds the dns-nameservers setting.
const maxNameservers = 8

// externalNameOf checks the spec.externalName of an ExternalName Service
// of namespace ns, and returns it lower-cased without a trailing dot. It
// must be a fully qualified DNS name HAProxy can only read as a name to
// resolve, and not a name of the cluster that leads into another
// namespace:
//   - labels of letters, digits and '-' (no '_': HAProxy asks SRV records
//     for "_service._proto.name"), 1 to 63 characters, not starting or
//     ending with '-', at most 253 characters in all;
//   - not an IP address (no all-numeric last label: "10.0.0.1", "127.1"
//     and "2130706433" are addresses to inet_aton);
//   - at least two labels, and a two-label name must end in a public
//     suffix ("example.com"): HAProxy's resolvers apply no search list,
//     and "web.other-ns" is the cluster's short form of another
//     namespace's Service;
//   - no cluster-internal name of another namespace: "<x>.<ns>.svc",
//     "<x>.<ns>.svc.<cluster domain>", "<x>.<ns>.pod.<cluster domain>",
//     with <ns> not the Service's own; nor a name under "cluster.local"
//     of another shape;
//   - not "localhost" or a name under it (RFC 6761).
func externalNameOf(svc *corev1.Service) (string, error) {
	v := svc.Spec.ExternalName
	if v == "" {
		return "", fmt.Errorf("is empty: want the DNS name to send requests to")
	}
	name := strings.TrimSuffix(v, ".")
	if len(name) > 253 {
		return "", fmt.Errorf("is %d characters long: a DNS name has at most 253", len(name))
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", fmt.Errorf("%s is an IP address: only DNS names are resolved (use a Service with an EndpointSlice for an address)", truncate(v))
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if err := checkDNSLabel(l); err != nil {
			return "", fmt.Errorf("%s: label %d %w", truncate(v), i+1, err)
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%s ends in an all-numeric label, which reads as an IP address", truncate(v))
	}
	if len(labels) < 2 {
		return "", fmt.Errorf("%s is a single label: want a fully qualified name (HAProxy's resolvers apply no search domains)", truncate(v))
	}
	if last == "localhost" {
		return "", fmt.Errorf("%s is localhost: the load balancer itself is not a backend", truncate(v))
	}
	if len(labels) >= 3 && (labels[2] == "svc" || labels[2] == "pod") || last == "svc" {
		if labels[1] != svc.Namespace {
			return "", fmt.Errorf("%s names a Service of namespace %s: only a name of the Service's own namespace (%s) or outside the cluster is allowed", truncate(v), truncate(labels[1]), svc.Namespace)
		}
		return name, nil
	}
	if strings.HasSuffix(name, ".cluster.local") {
		return "", fmt.Errorf("%s is a cluster-internal name not of the form <service>.%s.svc.cluster.local", truncate(v), svc.Namespace)
	}
	if len(labels) == 2 {
		if _, icann := publicsuffix.PublicSuffix(name); !icann {
			return "", fmt.Errorf("%s has two labels and does not end in a public suffix: it reads as the cluster's short form of Service %s in namespace %s; write the fully qualified name", truncate(v), labels[0], labels[1])
		}
	}
	return name, nil
}

// checkDNSLabel checks one label of a DNS name (RFC 1123, lower case as
// the API server asks for it).
func checkDNSLabel(l string) error {
	if l == "" {
		return fmt.Errorf("is empty")
	}
	if len(l) > 63 {
		return fmt.Errorf("is %d characters long: at most 63", len(l))
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(l)-1 {
			continue
		}
		return fmt.Errorf("has %q at offset %d: want lower-case letters, digits and '-' inside", rune(c), i)
	}
	return nil
}

// parseNameservers reads dns-nameservers: comma-separated addresses
// (port 53) or address:port pairs ("[::1]:53" for IPv6); "" keeps the
// nameservers of the pod's /etc/resolv.conf.
func parseNameservers(v string) ([]netip.AddrPort, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []netip.AddrPort
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		ap, err := netip.ParseAddrPort(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%s: want IP addresses or address:port pairs, comma-separated", truncate(f))
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		if ap.Addr().Zone() != "" || ap.Port() == 0 || ap.Addr().IsUnspecified() {
			return nil, fmt.Errorf("%s: want an address without zone, not unspecified, and a port from 1 to 65535", truncate(f))
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		out = append(out, ap)
		if len(out) > maxNameservers {
			return nil, fmt.Errorf("more than %d nameservers", maxNameservers)
		}
	}
	return out, nil
}

// externalBackend resolves an Ingress backend naming an ExternalName
// Service. The port follows the Ingress spec: a number is the port
// connected to, listed by the Service or not (an ExternalName Service
// need list none); a name must be one of the Service's ports, whose
// port number is connected to (ingress-nginx does the same); the
// default-backend annotation without a port takes the first port
// listed.
func (b *builder) externalBackend(r reporter, pb *parsedBackend, svc *corev1.Service) (string, ServiceRef, bool) {
	ns, ref := pb.ref.Namespace, pb.ref
	port, portName := pb.portNumber, ""
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (pb.portNumber == 0 && (p.Name == ref.Port || pb.kind == firstPort)) || (pb.portNumber != 0 && p.Port == pb.portNumber) {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				r.warn(pb.fieldName()+".service.port", UnsupportedBackend, "Service %s/%s port %s is %s, not TCP; answering 503", ns, ref.Name, ref.Port, p.Protocol)
				return UnavailableBackend, ref, true
			}
			port, portName = p.Port, p.Name
			break
		}
	}
	if port <= 0 || port > 65535 {
		r.warn(pb.fieldName()+".service.port", BackendPortNotFound, "ExternalName Service %s/%s has no port %s (a port name must be listed in its spec.ports); answering 503", ns, ref.Name, ref.Port)
		return UnavailableBackend, ref, true
	}
	if pb.kind == firstPort {
		ref.Port = strconv.Itoa(int(port))
	}
	name := backendName(ns, ref.Name, port)
	if b.cur != nil {
		name = variantName(name, b.cur.ingress)
	}
	be := b.backends[name]
	if be == nil {
		be = b.newExternalBackend(name, svc, port, portName)
		b.backends[name] = be
	}
	if be.ExternalRefused {
		r.notice(pb.fieldName()+".service.name", InvalidExternalName, "ExternalName Service %s/%s whose spec.externalName is refused (see the Service's problem); answering 503", ns, ref.Name)
	}
	return name, ref, true
}

// newExternalBackend makes the backend of an ExternalName Service port:
// one server, the name HAProxy resolves, with the Service's backend
// annotations and, on a per-Ingress backend, its route policy, as
// newBackend. A refused name makes a backend without a server, its
// problem kept with the backend (as an EndpointSlice's) so that it is
// reported once, on the Service.
func (b *builder) newExternalBackend(name string, svc *corev1.Service, port int32, portName string) *Backend {
	var reported []Problem
	be, err := externalBackendOf(name, svc, port, portName)
	if err != nil {
		b.capture = &reported
		b.reporter("Service", svc.Namespace, svc.Name).warn("spec.externalName", InvalidExternalName,
			"%v; the routes to this Service answer 503", err)
		b.capture = nil
	}
	if o := b.claims.settings(svc.Namespace + "/" + svc.Name); o != nil {
		b.capture = &reported
		b.backendSettings(be, o)
		if be.Settings.ServiceUpstream {
			b.reporter("Service", svc.Namespace, svc.Name).notice("spec.type", UnsupportedBackend,
				"service-upstream has no cluster IP to use on an ExternalName Service; its name is resolved as without it")
		}
		b.capture = nil
	}
	if b.cur != nil {
		be.Ingress, be.Policy, be.Users, be.RewritePaths = b.cur.ingress, &b.cur.ann.route, b.cur.users, b.cur.rewrite
		be.ExtAuthBackend, be.ErrorBackend = b.cur.authBackend, b.cur.errors
	}
	if len(reported) > 0 {
		b.sliceProblems[name] = reported
	}
	return be
}

// externalBackendOf is the backend of an ExternalName Service port that
// connects to port: one server resolving its name or, when the name is
// refused (the error says why), none at all, so that nothing can ever be
// sent there.
func externalBackendOf(name string, svc *corev1.Service, port int32, portName string) (*Backend, error) {
	be := &Backend{Name: name, Namespace: svc.Namespace, Service: svc.Name, Port: port, PortName: portName}
	host, err := externalNameOf(svc)
	if err != nil {
		be.ExternalRefused = true
		return be, err
	}
	be.ExternalName, be.ExternalPort = host, port
	be.Slots, be.SlotAddrs = 1, make([]netip.AddrPort, 1)
	return be, nil
}
