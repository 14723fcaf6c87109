package render

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// An Ingress with route annotations gets its own HAProxy backend for each
// Service port it uses, named variantName(base, ingress): the rules its
// annotations ask for run in that backend, after routing picked it, so a
// request pays only for its own route's rules and the frontend stays the
// same for every Ingress. Backend annotations (BackendSettings) belong to
// the Service: its plain backend and every per-Ingress one get the same.

// variantName is the backend of a Service port for one Ingress's routes.
// ':' appears in no Service port backend name.
func variantName(base, ingress string) string { return base + ":" + ingress }

// ingressPolicy is the route policy of the Ingress being visited, with
// what it needs from other objects.
type ingressPolicy struct {
	ingress string
	ann     *parsedAnnotations
	users   []HTPasswdUser
	// rewrite are the paths rewrite-target replaces and
	// x-forwarded-prefix: true sends.
	rewrite []RewritePath
	// authBackend is the auth service's backend (ExtAuth).
	authBackend string
	// errors is the backend custom-http-errors takes error pages from.
	errors string
}

// policyOf returns the route policy of an Ingress, nil when it has none.
func (b *builder) policyOf(r reporter, p *parsedIngress) *ingressPolicy {
	rp := &p.ann.route
	if rp.IsZero() {
		return nil
	}
	ip := &ingressPolicy{ingress: r.obj.Name, ann: p.ann}
	if rp.AuthSecret != "" {
		field := annotationField(p.ann.keys["auth-basic-secret"])
		ip.users = b.authUsers(r, field, r.obj.Namespace, rp.AuthSecret, authBackends(p))
	}
	if rp.ExtAuth != nil {
		ip.authBackend = b.extAuthBackend(r, annotationField(p.ann.keys["auth-url"]), r.obj.Namespace, rp.ExtAuth)
	}
	if (rp.RewriteTarget != "" && (!rp.RewriteWholePath || p.ann.useRegex == True)) || rp.XForwardedPrefixMatched {
		ip.rewrite = rewriteFor(p)
	}
	if len(rp.ErrorCodes) > 0 {
		ip.errors = b.errorBackend(r, p)
	}
	return ip
}

// RewritePath is one of an Ingress's paths, as rewrite-target and
// x-forwarded-prefix match it.
type RewritePath struct {
	Path  string // trailing slashes removed for prefixes
	Exact bool
	// Regex is a regular-expression path's PCRE expression (Route.Regex).
	Regex string
}

// rewriteFor lists an Ingress's valid paths, Exact ones first, then
// prefixes longest first (the order routing prefers), so that the prefix
// replaced is the one that routed the request.
func rewriteFor(p *parsedIngress) []RewritePath {
	var out []RewritePath
	for i := range p.paths {
		pp := &p.paths[i]
		if pp.problem != nil || pp.weak != notWeak {
			continue
		}
		if pp.regex != nil {
			out = append(out, RewritePath{Path: pp.path, Regex: pp.regex.pattern})
		} else if pp.match == MatchExact {
			out = append(out, RewritePath{Path: pp.path, Exact: true})
		} else {
			out = append(out, RewritePath{Path: strings.TrimRight(pp.path, "/")})
		}
	}
	slices.SortFunc(out, func(x, y RewritePath) int {
		if x.Exact != y.Exact {
			if x.Exact {
				return -1
			}
			return 1
		}
		return cmpLenThenText(y.Path, x.Path)
	})
	return slices.Compact(out)
}

func cmpLenThenText(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// backendSettings applies a Service's backend annotations to one of its
// backends, reading the CA Secret they name.
func (b *builder) backendSettings(be *Backend, o *settingsClaim) {
	be.Settings = o.ann.backend
	s := &be.Settings
	if s.CASecret == "" {
		return
	}
	r := b.reporter("Ingress", o.namespace, o.name)
	field := annotationField(o.ann.keys["backend-ca-secret"])
	key := o.namespace + "/" + s.CASecret
	sec := b.secrets[key]
	if sec == nil {
		r.warn(field, AnnotationSecretNotFound, "Secret %s not found; Service %s/%s answers 503 until it exists", key, be.Namespace, be.Service)
		be.Broken = true
		return
	}
	data, err := caPEM(sec)
	if err != nil {
		r.warn(field, AnnotationSecretInvalid, "Secret %s: %v; Service %s/%s answers 503 until it is fixed", key, err, be.Namespace, be.Service)
		be.Broken = true
		return
	}
	be.CA = &CAFile{File: "certs/ca_" + o.namespace + "_" + s.CASecret + ".pem", Namespace: o.namespace, Secret: s.CASecret, PEM: data}
}

// CAFile is a backend-ca-secret's bundle, written like a certificate.
type CAFile struct {
	File              string
	Namespace, Secret string
	// PEM holds only re-encoded CERTIFICATE blocks.
	PEM []byte
}

// caPEM reads the certificates under ca.crt, re-encoded: nothing else of
// the Secret reaches the file.
func caPEM(sec *corev1.Secret) ([]byte, error) {
	rest := sec.Data["ca.crt"]
	if len(rest) == 0 {
		return nil, fmt.Errorf("no ca.crt")
	}
	out, n, err := reencodeCertificates(rest, func(_ int, _ *x509.Certificate, err error) error {
		if err != nil {
			return fmt.Errorf("a certificate in ca.crt does not parse")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("no certificate in ca.crt")
	}
	return out, nil
}
