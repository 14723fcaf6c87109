package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// At start, the Secrets the initial lists reference are watched all at
// once, and each watch's first list was a request of its own: at 1,000
// TLS Ingresses those 1,000 lists took 2.2 of the 4.1 s from process start
// to the first right answer (e2e/bench, TLS variant, HAProxy 2.6). Now a
// namespace with many of them has its TLS Secrets listed once, in pages,
// and each watch starts from that list (watchSecret's seed). Only Secrets
// of type kubernetes.io/tls are listed: the referenced ones are mostly
// that, and a namespace's other Secrets (Helm releases, tokens) may be
// large and many. A referenced Secret the list does not hold (another
// type, or none of that name) gets its own first list, as before.

const (
	// seedMin is how many Secrets of one namespace the start must watch
	// before their first lists are one list of the namespace's TLS
	// Secrets: below it, narrow lists cost less than reading the others.
	seedMin = 16
	// seedPage is the page size of that list.
	seedPage = 500
	// seedTimeout bounds that list; a namespace whose list fails or
	// times out gets one list per Secret.
	seedTimeout = 30 * time.Second
)

// seedFirstLists returns, for each namespace/name of keys in a namespace
// with seedMin keys or more, its first list (one item, or none when the
// list of TLS Secrets does not hold it and so it is not seeded at all),
// with the resource version of the namespace's list. Namespaces whose
// list fails are left out.
func seedFirstLists(ctx context.Context, client kubernetes.Interface, keys []string) (map[string]*corev1.SecretList, []error) {
	byNS := map[string]map[string]bool{}
	for _, key := range keys {
		ns, name, err := splitRef(key)
		if err != nil {
			continue
		}
		if byNS[ns] == nil {
			byNS[ns] = map[string]bool{}
		}
		byNS[ns][name] = true
	}
	out := map[string]*corev1.SecretList{}
	var errs []error
	for ns, names := range byNS {
		if len(names) < seedMin {
			continue
		}
		found, rv, err := listTLSSecrets(ctx, client, ns, names)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the TLS Secrets of namespace %s: %w", ns, err))
			continue
		}
		for _, sec := range found {
			out[ns+"/"+sec.Name] = &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []corev1.Secret{*sec}}
		}
	}
	return out, errs
}

// listTLSSecrets lists the TLS Secrets of ns in pages, keeping those
// named in names; rv is the list's resource version (every page is of
// the first page's snapshot).
func listTLSSecrets(ctx context.Context, client kubernetes.Interface, ns string, names map[string]bool) ([]*corev1.Secret, string, error) {
	ctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	// From the API server's watch cache (resource version "0"), as a
	// reflector's first list is: the watches start from its version and
	// bring whatever came after it.
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String(),
		Limit: seedPage, ResourceVersion: "0"}
	var found []*corev1.Secret
	rv := ""
	for {
		list, err := client.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		if rv == "" {
			rv = list.ResourceVersion
		}
		for i := range list.Items {
			if names[list.Items[i].Name] {
				found = append(found, &list.Items[i])
			}
		}
		if list.Continue == "" {
			return found, rv, nil
		}
		opts.Continue, opts.ResourceVersion = list.Continue, ""
	}
}
