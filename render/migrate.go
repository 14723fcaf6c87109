package render

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The migration report (`haproxy-sidecar migrate`) says, for each
// ingress-nginx annotation on each Ingress, what haproxy-sidecar does with
// it under --annotations-compat nginx. It reads the annotations with
// parseAnnotations, the function the model is built with, so the report
// and what `run` serves cannot disagree; the words come from the
// compatibility table (nginxAnnotations).

// MigrationStatus is what becomes of one ingress-nginx annotation.
type MigrationStatus string

const (
	// MigrationHonoured: the annotation becomes one of ours and behaves
	// as in ingress-nginx.
	MigrationHonoured MigrationStatus = "honoured"
	// MigrationDifference: it becomes one of ours, which behaves
	// differently in a way the table describes.
	MigrationDifference MigrationStatus = "honoured with a difference"
	// MigrationOverridden: it would be honoured, but another annotation
	// setting the same one of ours wins (a haproxy-sidecar.io annotation,
	// or an ingress-nginx one that sorts first).
	MigrationOverridden MigrationStatus = "overridden"
	// MigrationUnsupported: nothing of ours does what it does; the detail
	// is what traffic loses.
	MigrationUnsupported MigrationStatus = "unsupported"
	// MigrationInvalid: the value is not accepted; the annotation is
	// ignored.
	MigrationInvalid MigrationStatus = "invalid"
	// MigrationFailsClosed: the annotation restricts who may reach the
	// paths and cannot be applied (not implemented, or an invalid value
	// of an access restriction): the Ingress's paths answer 503.
	MigrationFailsClosed MigrationStatus = "fails closed"
)

// MigrationStatuses lists the statuses in the order reports count them.
func MigrationStatuses() []MigrationStatus {
	return []MigrationStatus{MigrationHonoured, MigrationDifference, MigrationOverridden, MigrationUnsupported, MigrationInvalid, MigrationFailsClosed}
}

// MigrationRow is one ingress-nginx annotation of one Ingress.
type MigrationRow struct {
	// Annotation is the whole key, nginx.ingress.kubernetes.io/...
	Annotation string          `json:"annotation"`
	Status     MigrationStatus `json:"status"`
	// Ours is the haproxy-sidecar.io annotation it becomes (honoured,
	// with a difference, or overridden); "" when there is none.
	Ours string `json:"ours,omitempty"`
	// Value is the value Ours gets from it, converted from ingress-nginx's
	// syntax and validated; "" when it asks for Ours's default.
	Value string `json:"value,omitempty"`
	// Detail is the difference, the effect traffic loses (unsupported),
	// why the value is refused (invalid), or what wins (overridden).
	Detail string `json:"detail,omitempty"`
}

// MigrationIngress is the rows of one Ingress, sorted by annotation.
type MigrationIngress struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Rows      []MigrationRow `json:"annotations"`
	// NotSelected says why no IngressClass of the controller in the
	// input selects the Ingress ("" when one does): as it stands, it
	// would not be served.
	NotSelected string `json:"not_selected,omitempty"`
}

// MigrationSummary counts the rows by status, and the Ingresses.
type MigrationSummary struct {
	// Ingresses were read; WithNginx of them have ingress-nginx
	// annotations (only those are listed).
	Ingresses   int `json:"ingresses"`
	WithNginx   int `json:"ingresses_with_nginx_annotations"`
	Honoured    int `json:"honoured"`
	Difference  int `json:"honoured_with_a_difference"`
	Overridden  int `json:"overridden"`
	Unsupported int `json:"unsupported"`
	Invalid     int `json:"invalid"`
	FailsClosed int `json:"fails_closed"`
	// FullySupported Ingresses (of WithNginx) have only supported uses:
	// honoured, with a difference, or overridden by another annotation
	// that does the job. NotSelected Ingresses (of all) no IngressClass
	// of the controller in the input selects.
	FullySupported int `json:"ingresses_fully_supported"`
	NotSelected    int `json:"ingresses_not_selected"`
}

// Uses is the number of ingress-nginx annotations read, Supported those
// honoured (with or without a difference) or overridden.
func (s *MigrationSummary) Uses() int {
	return s.Honoured + s.Difference + s.Overridden + s.Unsupported + s.Invalid + s.FailsClosed
}

func (s *MigrationSummary) Supported() int { return s.Honoured + s.Difference + s.Overridden }

func supportedStatus(st MigrationStatus) bool {
	return st == MigrationHonoured || st == MigrationDifference || st == MigrationOverridden
}

// Count is the number of rows with status s.
func (s *MigrationSummary) Count(st MigrationStatus) int {
	return *s.counter(st)
}

func (s *MigrationSummary) counter(st MigrationStatus) *int {
	switch st {
	case MigrationHonoured:
		return &s.Honoured
	case MigrationDifference:
		return &s.Difference
	case MigrationOverridden:
		return &s.Overridden
	case MigrationUnsupported:
		return &s.Unsupported
	case MigrationFailsClosed:
		return &s.FailsClosed
	}
	return &s.Invalid
}

// Migration is the whole report.
type Migration struct {
	// Ingresses are those with ingress-nginx annotations, sorted by
	// namespace and name.
	Ingresses []MigrationIngress `json:"ingresses"`
	Summary   MigrationSummary   `json:"summary"`
}

// MigrationReport says what --annotations-compat nginx makes of every
// ingress-nginx annotation on the Ingresses in. It looks at each Ingress
// alone: conflicts between Ingresses sharing a Service and missing Secrets
// are reported by `render`. Whether an IngressClass of controller (""
// for DefaultControllerName) in the input selects it is noted, since an
// Ingress written for ingress-nginx names ingress-nginx's class.
func MigrationReport(in Inputs, controller string) Migration {
	if controller == "" {
		controller = DefaultControllerName
	}
	classes, dflt := classesOf(in.IngressClasses, controller)
	m := Migration{Ingresses: []MigrationIngress{}}
	secrets := map[string][]byte{}
	for _, s := range in.Secrets {
		// The first of a Secret given twice, as for Ingresses.
		if _, ok := secrets[s.Namespace+"/"+s.Name]; !ok {
			secrets[s.Namespace+"/"+s.Name] = s.Data["auth"]
		}
	}
	for _, ing := range in.Ingresses {
		m.Summary.Ingresses++
		_, why := selectedByClass(ing, classes, dflt, controller)
		if why != "" {
			m.Summary.NotSelected++
		}
		rows := migrationRows(ing.Namespace, ing.Annotations)
		if len(rows) == 0 {
			continue
		}
		noteAuthSecret(rows, ing.Namespace, secrets)
		m.Summary.WithNginx++
		full := true
		for _, r := range rows {
			(*m.Summary.counter(r.Status))++
			full = full && supportedStatus(r.Status)
		}
		if full {
			m.Summary.FullySupported++
		}
		m.Ingresses = append(m.Ingresses, MigrationIngress{Namespace: ing.Namespace, Name: ing.Name, Rows: rows, NotSelected: why})
	}
	slices.SortStableFunc(m.Ingresses, func(a, b MigrationIngress) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return m
}

// migrationRows classifies the ingress-nginx annotations of one Ingress.
func migrationRows(ns string, ann map[string]string) []MigrationRow {
	var keys []string
	for key := range ann {
		if strings.HasPrefix(key, NginxAnnotationPrefix) {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	// What the model makes of them: the problems say which were refused
	// or overridden, by field.
	parsed := parseAnnotations(ns, ann, CompatNginx)
	byField := map[string][]*localProblem{}
	for _, p := range parsed.problems {
		byField[p.field] = append(byField[p.field], p)
	}
	ctx := nginxContext{namespace: ns, annotations: ann}
	converted := func(n *nginxAnnotation, v string) (string, error) {
		if n.convert == nil {
			return v, nil
		}
		return n.convert(v, ctx)
	}
	rows := make([]MigrationRow, 0, len(keys))
	for _, key := range keys {
		name := strings.TrimPrefix(key, NginxAnnotationPrefix)
		row := MigrationRow{Annotation: key}
		if p := problemWith(byField[annotationField(key)], UnsupportedProtection); p != nil {
			row.Status, row.Detail = MigrationFailsClosed, p.msg
			rows = append(rows, row)
			continue
		}
		n := findNginx(name)
		if n == nil {
			row.Status, row.Detail = MigrationUnsupported, "unknown to haproxy-sidecar's compatibility table: whatever it does in ingress-nginx is not done"
			rows = append(rows, row)
			continue
		}
		if n.ours == "" && n.accepted {
			row.Status, row.Detail = MigrationDifference, n.difference
			if p := problemWith(byField[annotationField(key)], InvalidAnnotation); p != nil {
				row.Status, row.Detail = MigrationInvalid, p.msg
			}
			rows = append(rows, row)
			continue
		}
		if n.ours == "" {
			row.Status, row.Detail = MigrationUnsupported, n.effect
			rows = append(rows, row)
			continue
		}
		row.Ours = AnnotationPrefix + n.ours
		if p := problemWith(byField[annotationField(key)], InvalidAnnotation, AnnotationOverridden, UnsupportedAnnotation); p != nil {
			row.Status, row.Detail = MigrationInvalid, p.msg
			switch {
			case p.Reason == UnsupportedAnnotation:
				row.Status, row.Ours = MigrationUnsupported, ""
			case p.Reason == AnnotationOverridden:
				row.Status = MigrationOverridden
			case slices.Contains(parsed.route.Closed, key):
				row.Status = MigrationFailsClosed
			}
			rows = append(rows, row)
			continue
		}
		v, err := converted(n, ann[key])
		if err != nil {
			// parseAnnotations reports every conversion error; this is
			// only reached if the two ever disagree.
			row.Status, row.Detail = MigrationInvalid, fmt.Sprintf("value %s: %v; annotation ignored", truncate(ann[key]), err)
			rows = append(rows, row)
			continue
		}
		if a := findAnnotation(n.ours); parsed.route.Canary != nil && a != nil && a.scope == RouteScope && !strings.HasPrefix(n.ours, "canary") {
			row.Status, row.Detail = MigrationOverridden, "ignored on a canary: requests the canary takes follow the main Ingress's route annotations, as in ingress-nginx"
			rows = append(rows, row)
			continue
		}
		row.Value = v
		row.Status, row.Detail = MigrationHonoured, n.difference
		if n.difference != "" {
			row.Status = MigrationDifference
		}
		rows = append(rows, row)
	}
	return rows
}

// noteAuthSecret adds to an honoured auth-secret's detail which users of
// its htpasswd Secret, when the input has it, HAProxy will not get:
// ingress-nginx users often have Apache MD5 hashes, htpasswd's default,
// which HAProxy's crypt(3) cannot check. Users are named by line, never by
// hash.
func noteAuthSecret(rows []MigrationRow, ns string, secrets map[string][]byte) {
	for i := range rows {
		r := &rows[i]
		if r.Annotation != NginxAnnotationPrefix+"auth-secret" || r.Value == "" || (r.Status != MigrationHonoured && r.Status != MigrationDifference) {
			continue
		}
		data, ok := secrets[ns+"/"+r.Value]
		if !ok {
			continue
		}
		f, err := parseHTPasswd(data)
		switch {
		case err != nil:
			r.Detail += fmt.Sprintf("; Secret %s/%s: %v: every request gets 401 until it is fixed", ns, r.Value, err)
			continue
		case len(f.unsupported) > 0:
			r.Detail += fmt.Sprintf("; Secret %s/%s: these users cannot log in until their passwords are re-hashed: %s", ns, r.Value, listUsers(f.unsupported, true))
		}
		if len(f.tooCostly) > 0 {
			r.Detail += fmt.Sprintf("; Secret %s/%s: these users' hashes cost too much CPU to check and are left out: %s; %s", ns, r.Value, listUsers(f.tooCostly, true), rehash)
		}
	}
}

// problemWith returns the first problem with one of the reasons.
func problemWith(ps []*localProblem, reasons ...Reason) *localProblem {
	for _, p := range ps {
		if slices.Contains(reasons, p.Reason) {
			return p
		}
	}
	return nil
}

// Text is the report for people: one block per Ingress, one line per
// annotation, then the counts. Keys and values are quoted Go-style when
// they hold anything but printable characters.
func (m Migration) Text() string {
	var b strings.Builder
	for i, ing := range m.Ingresses {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s\n", ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name})
		if ing.NotSelected != "" {
			fmt.Fprintf(&b, "  not served as it stands: %s\n", ing.NotSelected)
		}
		for _, r := range ing.Rows {
			fmt.Fprintf(&b, "  %s: %s", plainOrQuoted(r.Annotation), r.Status)
			switch r.Status {
			case MigrationHonoured, MigrationDifference:
				if r.Ours == "" {
					b.WriteString(": nothing to set")
				} else if r.Value == "" {
					fmt.Fprintf(&b, ": %s stays unset (this value needs nothing set)", r.Ours)
				} else {
					fmt.Fprintf(&b, ": %s %s", r.Ours, truncate(r.Value))
				}
				if r.Detail != "" {
					fmt.Fprintf(&b, "; %s", r.Detail)
				}
			default:
				fmt.Fprintf(&b, ": %s", r.Detail)
			}
			b.WriteByte('\n')
		}
	}
	if len(m.Ingresses) > 0 {
		b.WriteByte('\n')
	}
	s := m.Summary
	fmt.Fprintf(&b, "%d Ingresses, %d with %s annotations:", s.Ingresses, s.WithNginx, strings.TrimSuffix(NginxAnnotationPrefix, "/"))
	for i, st := range MigrationStatuses() {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %d %s", sep, s.Count(st), st)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "Supported: %d of %d Ingresses with %s annotations fully (%s), %d of %d annotation uses (%s)\n",
		s.FullySupported, s.WithNginx, strings.TrimSuffix(NginxAnnotationPrefix, "/"), percent(s.FullySupported, s.WithNginx),
		s.Supported(), s.Uses(), percent(s.Supported(), s.Uses()))
	if s.NotSelected > 0 {
		fmt.Fprintf(&b, "%d of %d Ingresses are selected by no IngressClass of the controller in the input: as they stand they would not be served (create an IngressClass for haproxy-sidecar, or include the ones there are)\n",
			s.NotSelected, s.Ingresses)
	}
	return b.String()
}

// percent is part of whole as a whole percentage, "-" of nothing.
func percent(part, whole int) string {
	if whole == 0 {
		return "-"
	}
	return strconv.Itoa(part*100/whole) + " %"
}
