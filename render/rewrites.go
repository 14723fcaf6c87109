package render

import (
	"fmt"
	"strings"
)

// Rewrites of what the endpoints answer, as NGINX's proxy_redirect,
// proxy_cookie_path and proxy_cookie_domain do: an application that
// believes it is served at another address or prefix sends Location
// headers and cookies for that one, and the load balancer puts them right.

// Rewrite replaces From with To at the start of a value (a Location URL, a
// cookie's Path) or, for a cookie's Domain, the whole value.
type Rewrite struct{ From, To string }

// parseLocationPrefix reads proxy-redirect-from and -to: an absolute http
// or https URL, or an absolute path.
func parseLocationPrefix(v string) (string, error) {
	if strings.HasPrefix(v, "/") {
		if err := validateAnnotationPath(v); err != nil {
			return "", err
		}
		return v, nil
	}
	if err := validateRedirectURL(v); err != nil {
		return "", fmt.Errorf("want an absolute http or https URL or an absolute path: %w", err)
	}
	return v, nil
}

// parsePair reads NGINX's "FROM TO" (proxy-cookie-path, proxy-cookie-domain),
// each part checked by valid; "off" is no rewrite.
func parsePair(v string, valid func(string) error) (*Rewrite, error) {
	if v == "off" {
		return nil, nil
	}
	parts := strings.Split(v, " ")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("want two values, from and to, separated by one space (or off)")
	}
	for _, p := range parts {
		if err := valid(p); err != nil {
			return nil, err
		}
	}
	return &Rewrite{From: parts[0], To: parts[1]}, nil
}

// cookiePath is a cookie Path without ';' (it would start another
// attribute).
func cookiePath(v string) error {
	if err := validateAnnotationPath(v); err != nil {
		return err
	}
	if strings.Contains(v, ";") {
		return fmt.Errorf("%s: a cookie path must not contain ';'", truncate(v))
	}
	return nil
}

// locationRewrite joins proxy-redirect-from and -to once both are read: one
// without the other is reported and ignored.
func locationRewrite(a *parsedAnnotations, report func(key string, p *localProblem)) {
	from, to := a.redirectFrom, a.redirectTo
	switch {
	case from == "" && to == "":
	case from == "" || to == "":
		set, missing := "proxy-redirect-to", "proxy-redirect-from"
		if to == "" {
			set, missing = missing, set
		}
		key := a.keys[set]
		report(key, warning(annotationField(key), InvalidAnnotation, "needs %s too: Location headers are not rewritten", missing))
	default:
		a.route.LocationRewrite = &Rewrite{From: from, To: to}
	}
}
