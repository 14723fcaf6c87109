package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// custom-http-errors: the responses of an Ingress's endpoints with one of
// the listed statuses are replaced, in HAProxy, by what the Service of the
// Ingress's default-backend annotation answers (haproxycfg/errorpages.go
// has the HAProxy side: a Lua action fetching the page with
// core.httpclient from one of that Service's servers, then
// "http-response return" with the page). The page comes from the
// Ingress's own namespace only: the controller's default backend
// (--default-backend-service) is not used for it.

// maxErrorCodes bounds custom-http-errors (one rule per code).
const maxErrorCodes = 20

// parseErrorCodes reads custom-http-errors: comma-separated status codes.
func parseErrorCodes(v string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || len(s) != 3 || n < 400 || n > 599 {
			return nil, fmt.Errorf("want status codes from 400 to 599")
		}
		out = append(out, n)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("want one or more status codes")
	}
	if len(out) > maxErrorCodes {
		return nil, fmt.Errorf("more than %d status codes", maxErrorCodes)
	}
	return out, nil
}

// errorBackend is the backend custom-http-errors takes pages from: the
// plain backend of the default-backend annotation's Service port, made
// here (and kept in the model, Model.extra) whether or not a path routes
// to it. "" without a usable default-backend (reported); the endpoints'
// responses then pass unchanged.
func (b *builder) errorBackend(r reporter, p *parsedIngress) string {
	field := annotationField(p.ann.keys["custom-http-errors"])
	d := p.ann.defaultService
	if d == nil {
		r.notice(field, ErrorPagesUnavailable, "needs the default-backend annotation (the Service answering error pages); endpoints' responses are passed unchanged")
		return ""
	}
	pb := defaultBackendRef(r.obj.Namespace, annotationField(p.ann.keys["default-backend"]), d)
	name, _, ok := b.backend(r, &pb)
	if !ok || name == UnavailableBackend {
		return ""
	}
	b.m.extra = append(b.m.extra, name)
	return name
}
