package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// At start, the Secrets the initial lists reference are watched all at
// once. A namespace with nsWatchMin or more of them has its TLS Secrets
// listed once, in pages, and that list is the first of its namespace
// watch (watchNamespaceTLS's seed): the first render does not wait for a
// list per Secret (at 1,000 TLS Ingresses those 1,000 lists took 2.2 of
// the 4.1 s from process start to the first right answer, e2e/bench,
// TLS variant, HAProxy 2.6).

const (
	// seedPage is the page size of that list.
	seedPage = 500
	// seedTimeout bounds that list; a namespace whose list fails or
	// times out gets one watch per Secret.
	seedTimeout = 30 * time.Second
)

// listTLSSecrets lists the TLS Secrets of ns in pages, as one list with
// the resource version of the first page (every page is of its
// snapshot).
func listTLSSecrets(ctx context.Context, client kubernetes.Interface, ns string) (*corev1.SecretList, error) {
	ctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	// From the API server's watch cache (resource version "0"), as a
	// reflector's first list is: the watch starts from its version and
	// brings whatever came after it.
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String(),
		Limit: seedPage, ResourceVersion: "0"}
	out := &corev1.SecretList{}
	for {
		list, err := client.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		if out.ResourceVersion == "" {
			out.ResourceVersion = list.ResourceVersion
		}
		out.Items = append(out.Items, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue, opts.ResourceVersion = list.Continue, ""
	}
}
