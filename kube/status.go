package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// DefaultFieldManager names this controller in managedFields of what it
// writes.
const DefaultFieldManager = "haproxy-sidecar"

// defaultStatusWorkers bounds concurrent UpdateStatus calls: enough to
// publish thousands of Ingresses at start-up in reasonable time, few
// enough not to crowd out the informers on the same client.
const defaultStatusWorkers = 4

// StatusWriter publishes the load balancer's address in the
// status.loadBalancer.ingress of every Ingress this controller serves, and
// removes it from Ingresses that stop being ours. Exactly one of
// PublishService and PublishAddresses must be set (see Validate).
type StatusWriter struct {
	Client kubernetes.Interface
	// PublishService is "namespace/name" of the Service in front of the
	// HAProxy pods: its status.loadBalancer.ingress is published if it
	// has one, else its spec.externalIPs, else its ClusterIP.
	PublishService string
	// PublishAddresses are IPs and/or DNS names published as they are
	// (see ParsePublishAddresses for the flag's comma-separated form).
	PublishAddresses []string
	// IsLeader gates writes: when set and false, Sync writes nothing. It
	// is checked before every write so that a replica that loses the
	// Lease in the middle of a Sync stops at once. Nil means always write.
	IsLeader func() bool
	// FieldManager defaults to DefaultFieldManager.
	FieldManager string
	// Workers bounds concurrent writes; 0 means defaultStatusWorkers.
	Workers int
	Log     *zap.Logger
}

// ParsePublishAddresses splits the --publish-address flag: a
// comma-separated list of IP addresses and DNS names. Blank items are
// ignored; anything else that is neither is an error.
func ParsePublishAddresses(flag string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(flag, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if _, err := statusParseAddress(item); err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// statusParseAddress turns one published address into a status entry.
// IPs are written in canonical form so that "::1" and "0::1" cannot both
// end up in a status.
func statusParseAddress(s string) (networkingv1.IngressLoadBalancerIngress, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return networkingv1.IngressLoadBalancerIngress{}, fmt.Errorf("publish address %q: an IP with a zone cannot be reached from other hosts", s)
		}
		return networkingv1.IngressLoadBalancerIngress{IP: ip.Unmap().String()}, nil
	}
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		return networkingv1.IngressLoadBalancerIngress{}, fmt.Errorf("publish address %q is neither an IP address nor a DNS name: %s", s, strings.Join(errs, "; "))
	}
	return networkingv1.IngressLoadBalancerIngress{Hostname: s}, nil
}

// Validate checks the configuration without calling the API server, so
// that run mode can reject bad flags before it starts.
func (w *StatusWriter) Validate() error {
	switch {
	case w.PublishService != "" && len(w.PublishAddresses) > 0:
		return errors.New("set either a publish Service or publish addresses, not both")
	case w.PublishService == "" && len(w.PublishAddresses) == 0:
		return errors.New("no publish Service and no publish addresses: nothing to publish")
	case w.PublishService != "":
		if _, _, err := statusSplitName(w.PublishService); err != nil {
			return fmt.Errorf("publish Service: %w", err)
		}
	}
	for _, a := range w.PublishAddresses {
		if _, err := statusParseAddress(a); err != nil {
			return err
		}
	}
	return nil
}

func statusSplitName(ref string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("%q is not namespace/name", ref)
	}
	return ns, n, nil
}

// Addresses returns the entries this controller publishes, sorted and
// without duplicates. With a publish Service it reads that Service.
func (w *StatusWriter) Addresses(ctx context.Context) ([]networkingv1.IngressLoadBalancerIngress, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	var out []networkingv1.IngressLoadBalancerIngress
	if w.PublishService == "" {
		for _, a := range w.PublishAddresses {
			e, _ := statusParseAddress(a) // checked by Validate
			out = append(out, e)
		}
		return statusNormalize(out), nil
	}
	ns, name, _ := statusSplitName(w.PublishService)
	svc, err := w.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get publish Service %s: %w", w.PublishService, err)
	}
	out = statusServiceAddresses(svc)
	if len(out) == 0 {
		// Publishing nothing would clear every served Ingress; better to
		// keep the last known address until the Service has one.
		return nil, fmt.Errorf("publish Service %s has no load balancer address, external IP or cluster IP yet", w.PublishService)
	}
	return out, nil
}

// statusServiceAddresses picks the most external address a Service has:
// what a client outside the cluster would use.
func statusServiceAddresses(svc *corev1.Service) []networkingv1.IngressLoadBalancerIngress {
	var out []networkingv1.IngressLoadBalancerIngress
	for _, lb := range svc.Status.LoadBalancer.Ingress {
		if lb.IP != "" || lb.Hostname != "" {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: lb.IP, Hostname: lb.Hostname})
		}
	}
	if len(out) == 0 {
		for _, ip := range svc.Spec.ExternalIPs {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
		}
	}
	if len(out) == 0 && svc.Spec.Type == corev1.ServiceTypeExternalName && svc.Spec.ExternalName != "" {
		out = append(out, networkingv1.IngressLoadBalancerIngress{Hostname: svc.Spec.ExternalName})
	}
	if len(out) == 0 {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if ip != corev1.ClusterIPNone {
				out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
			}
		}
	}
	return statusNormalize(out)
}

// statusNormalize sorts by IP then hostname and drops duplicates, so that
// the same addresses always give the same status and no needless write.
func statusNormalize(in []networkingv1.IngressLoadBalancerIngress) []networkingv1.IngressLoadBalancerIngress {
	slices.SortFunc(in, func(a, b networkingv1.IngressLoadBalancerIngress) int {
		return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.Hostname, b.Hostname))
	})
	return slices.CompactFunc(in, func(a, b networkingv1.IngressLoadBalancerIngress) bool {
		return a.IP == b.IP && a.Hostname == b.Hostname
	})
}

// statusDesired is the status.loadBalancer.ingress an Ingress should have.
// A served Ingress is ours entirely and gets exactly our addresses. From
// any other Ingress only our addresses are removed: entries written by
// another controller stay.
func statusDesired(current, ours []networkingv1.IngressLoadBalancerIngress, served bool) []networkingv1.IngressLoadBalancerIngress {
	if served {
		return slices.Clone(ours)
	}
	var out []networkingv1.IngressLoadBalancerIngress
	for _, e := range current {
		if !slices.ContainsFunc(ours, func(o networkingv1.IngressLoadBalancerIngress) bool {
			return o.IP == e.IP && o.Hostname == e.Hostname
		}) {
			out = append(out, e)
		}
	}
	return out
}

// statusWanted reports whether current is the status it should be:
// ours when served, else current without any of ours. It is
// statusEqual(current, statusDesired(current, ours, served)) without
// making the wanted list, as the status loop asks of every Ingress it
// reads.
func statusWanted(current, ours []networkingv1.IngressLoadBalancerIngress, served bool) bool {
	if served {
		return statusEqual(current, ours)
	}
	for _, e := range current {
		for _, o := range ours {
			if o.IP == e.IP && o.Hostname == e.Hostname {
				return false
			}
		}
	}
	return true
}

func statusEqual(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y networkingv1.IngressLoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname &&
			slices.EqualFunc(x.Ports, y.Ports, func(p, q networkingv1.IngressPortStatus) bool {
				return p.Port == q.Port && p.Protocol == q.Protocol && statusPtrEqual(p.Error, q.Error)
			})
	})
}

func statusPtrEqual(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Sync makes the status of every given Ingress match what it should be:
// served (keyed "namespace/name", as render.Model.Served) get the
// published addresses, the others lose them. ingresses should be all the
// Ingresses the source sees, not only the served ones, so that Ingresses
// that stopped being ours are cleaned up. Only Ingresses whose status
// differs are written; the objects may be stale informer copies (a
// conflict re-reads the Ingress and decides again). It returns the
// number of Ingresses written and the errors of those that failed; one
// failure does not stop the others. The status loop of run mode checks
// only what changed since its last run instead (statusTracker).
func (w *StatusWriter) Sync(ctx context.Context, ingresses []*networkingv1.Ingress, served map[string]bool) (int, error) {
	if !w.leading() {
		return 0, nil
	}
	ours, err := w.Addresses(ctx)
	if err != nil {
		return 0, err
	}
	isServed := func(ing *networkingv1.Ingress) bool { return served[ing.Namespace+"/"+ing.Name] }
	var todo []*networkingv1.Ingress
	for _, ing := range ingresses {
		if !statusWanted(ing.Status.LoadBalancer.Ingress, ours, isServed(ing)) {
			todo = append(todo, ing)
		}
	}
	return w.write(ctx, todo, ours, isServed)
}

// write brings the status of each of todo to what it should be, a few at a
// time (Workers). It clears each entry of todo as it hands it out.
func (w *StatusWriter) write(ctx context.Context, todo []*networkingv1.Ingress, ours []networkingv1.IngressLoadBalancerIngress, isServed func(*networkingv1.Ingress) bool) (int, error) {
	if len(todo) == 0 {
		return 0, nil
	}
	log := w.log()
	workers := cmp.Or(w.Workers, defaultStatusWorkers)
	next := make(chan *networkingv1.Ingress)
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		errs    statusErrors
	)
	for range min(workers, len(todo)) {
		wg.Go(func() {
			for ing := range next {
				wrote, err := w.syncOne(ctx, ing, ours, isServed(ing))
				if err != nil {
					errs.add(fmt.Errorf("Ingress %s/%s: %w", ing.Namespace, ing.Name, err))
				}
				if wrote {
					written.Add(1)
				}
			}
		})
	}
feed:
	for i, ing := range todo {
		select {
		case next <- ing:
			// Let go of once handed to a worker: the informer replaces
			// each object written, and a long write must not keep both.
			todo[i] = nil
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	n := int(written.Load())
	if n > 0 {
		log.Info("Ingress status updated", zap.Int("ingresses", n), zap.Any("addresses", statusStrings(ours)))
	}
	if err := errs.err(); err != nil {
		return n, err
	}
	return n, ctx.Err()
}

func (w *StatusWriter) syncOne(ctx context.Context, ing *networkingv1.Ingress, ours []networkingv1.IngressLoadBalancerIngress, served bool) (bool, error) {
	api := w.Client.NetworkingV1().Ingresses(ing.Namespace)
	cur := ing
	wrote := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if cur == nil {
			fresh, err := api.Get(ctx, ing.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != ing.UID && ing.UID != "" {
				// Deleted and created again: the new object will come
				// through the informer and be decided on then.
				return nil
			}
			cur = fresh
		}
		want := statusDesired(cur.Status.LoadBalancer.Ingress, ours, served)
		if statusEqual(cur.Status.LoadBalancer.Ingress, want) {
			return nil
		}
		if !w.leading() {
			return nil
		}
		patch, err := statusPatch(cur.ResourceVersion, want)
		if err != nil {
			return err
		}
		_, err = api.Patch(ctx, cur.Name, types.MergePatchType, patch,
			metav1.PatchOptions{FieldManager: cmp.Or(w.FieldManager, DefaultFieldManager)}, "status")
		if apierrors.IsConflict(err) {
			cur = nil
			return err
		}
		if err != nil {
			return err
		}
		wrote = true
		w.log().Debug("Ingress status written", zap.String("namespace", ing.Namespace), zap.String("name", ing.Name),
			zap.Bool("served", served), zap.Any("status", statusStrings(want)))
		return nil
	})
	if apierrors.IsNotFound(err) {
		return false, nil // deleted meanwhile: nothing left to update
	}
	if err != nil {
		return false, fmt.Errorf("update status: %w", err)
	}
	return wrote, nil
}

// statusPatch is the merge patch of the status subresource that sets
// the load balancer's entries to want, on the object at resourceVersion
// rv only (an older one is a conflict, as an update's would be). A patch
// rather than UpdateStatus: an update of the status subresource writes
// the metadata as sent, so every annotation would have to be sent back as
// it is, and the cache keeps Ingresses without kubectl's last-applied copy
// (trim).
func statusPatch(rv string, want []networkingv1.IngressLoadBalancerIngress) ([]byte, error) {
	type loadBalancer struct {
		// No omitempty: null takes every entry out.
		Ingress []networkingv1.IngressLoadBalancerIngress `json:"ingress"`
	}
	var p struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Status struct {
			LoadBalancer loadBalancer `json:"loadBalancer"`
		} `json:"status"`
	}
	p.Metadata.ResourceVersion = rv
	p.Status.LoadBalancer.Ingress = want
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("status patch: %w", err)
	}
	return b, nil
}

func (w *StatusWriter) leading() bool { return w.IsLeader == nil || w.IsLeader() }

func (w *StatusWriter) log() *zap.Logger {
	if w.Log == nil {
		return zap.NewNop()
	}
	return w.Log
}

func statusStrings(es []networkingv1.IngressLoadBalancerIngress) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, cmp.Or(e.IP, e.Hostname))
	}
	return out
}

// statusErrors collects the errors of concurrent writes, keeping a few:
// when the API server is down every Ingress fails the same way, and one
// error per Ingress would bury the message.
type statusErrors struct {
	mu    sync.Mutex
	first []error
	n     int
}

const statusErrorsKept = 3

func (e *statusErrors) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < statusErrorsKept {
		e.first = append(e.first, err)
	}
}

func (e *statusErrors) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return nil
	}
	err := errors.Join(e.first...)
	if e.n > len(e.first) {
		err = fmt.Errorf("%w\n(and %d more)", err, e.n-len(e.first))
	}
	return err
}
