package render

import (
	"fmt"
	"slices"
	"strconv"
)

// Severity tells a problem that dropped something from one that is only
// worth knowing.
type Severity int

const (
	// Warning means something a user wrote was skipped.
	Warning Severity = iota
	// Notice means something was ignored on purpose (not ours, unknown kind).
	Notice
)

func (s Severity) String() string {
	if s == Notice {
		return "notice"
	}
	return "warning"
}

// MarshalText writes the severity as the word reports lead with, so that
// JSON readers (/status) see "warning" or "notice" rather than a number
// whose meaning depends on the order of the constants.
func (s Severity) MarshalText() ([]byte, error) {
	switch s {
	case Warning, Notice:
		return []byte(s.String()), nil
	}
	return nil, fmt.Errorf("unknown severity %d", int(s))
}

// UnmarshalText reads what MarshalText writes.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "warning":
		*s = Warning
	case "notice":
		*s = Notice
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// ObjectRef names the object a problem is about. Kind is a Kubernetes kind
// ("Ingress", "EndpointSlice", "ConfigMap") or what the sidecar reads that
// is not an object: "File" (a manifest file or document, named by Name) and
// "Source" (the objects as a whole).
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String is the object as reports name it: "Ingress default/web".
func (o ObjectRef) String() string {
	s := o.Kind
	if o.Name != "" {
		if o.Namespace != "" {
			s += " " + plainOrQuoted(o.Namespace) + "/" + plainOrQuoted(o.Name)
		} else {
			s += " " + plainOrQuoted(o.Name)
		}
	}
	return s
}

// Reason says what kind of problem a Problem is, for programs: Events,
// metrics and /status group and filter by it, while the message is for
// people and may be reworded freely. The set is closed: every reason is a
// constant below and listed by Reasons, and a test fails on a problem
// created with any other value. The names are CamelCase like Kubernetes
// Event reasons, because Events use them as they are.
type Reason string

// Reasons of problems about Ingresses.
const (
	// InvalidName: metadata.namespace or metadata.name is not a valid
	// Kubernetes name (only manifests the API server never saw can hold
	// one); the whole object is skipped.
	InvalidName Reason = "InvalidName"
	// NotOurClass: the Ingress belongs to another controller's
	// IngressClass, or names none and none of ours is the default.
	NotOurClass Reason = "NotOurClass"
	// InvalidHost: a rule's host or a TLS entry's host is not a valid DNS
	// name or wildcard.
	InvalidHost Reason = "InvalidHost"
	// InvalidPathType: pathType is missing or not Exact, Prefix or
	// ImplementationSpecific.
	InvalidPathType Reason = "InvalidPathType"
	// InvalidPath: the path is not one HAProxy can match safely.
	InvalidPath Reason = "InvalidPath"
	// InvalidRegex: a path of an Ingress with use-regex is not a regular
	// expression HAProxy is given: not RE2 syntax, too long, or too
	// costly for a backtracking matcher (render/regex.go).
	InvalidRegex Reason = "InvalidRegex"
	// InvalidBackend: the Service reference itself is malformed (its name,
	// or its port's name or number).
	InvalidBackend Reason = "InvalidBackend"
	// UnsupportedBackend: a resource backend, a
	// Service port that is not TCP, or service-upstream on a Service
	// without a cluster IP (a notice: its endpoints are used).
	UnsupportedBackend Reason = "UnsupportedBackend"
	// InvalidExternalName: an ExternalName Service's spec.externalName is
	// not a DNS name HAProxy may resolve for a backend: malformed, an IP
	// address, localhost, or a cluster name of another namespace
	// (render/externalname.go); its routes answer 503.
	InvalidExternalName Reason = "InvalidExternalName"
	// BackendNotFound: the Service does not exist.
	BackendNotFound Reason = "BackendNotFound"
	// BackendPortNotFound: the Service has no such port.
	BackendPortNotFound Reason = "BackendPortNotFound"
	// NoEndpoints: the Service port has no ready endpoints yet.
	NoEndpoints Reason = "NoEndpoints"
	// Conflict: an older Ingress already serves the same host and path,
	// the default backend, or the TLS host with another Secret.
	Conflict Reason = "Conflict"
	// InvalidSecretName: a TLS entry's secretName is empty or not a valid
	// name.
	InvalidSecretName Reason = "InvalidSecretName"
	// TLSSecretNotFound: the TLS Secret does not exist.
	TLSSecretNotFound Reason = "TLSSecretNotFound"
	// TLSSecretInvalid: the TLS Secret exists but holds no usable
	// certificate and key.
	TLSSecretInvalid Reason = "TLSSecretInvalid"
)

// Reasons of problems about EndpointSlices.
const (
	// UnsupportedAddressType: the slice holds FQDN (or other non-IP)
	// endpoints.
	UnsupportedAddressType Reason = "UnsupportedAddressType"
	// InvalidPort: a slice port is out of range.
	InvalidPort Reason = "InvalidPort"
	// InvalidAddress: an endpoint address is not an IP address of the
	// slice's family.
	InvalidAddress Reason = "InvalidAddress"
)

// Reasons of problems about the settings ConfigMap.
const (
	// SettingsRefInvalid: the settings ConfigMap is not named as
	// namespace/name.
	SettingsRefInvalid Reason = "SettingsRefInvalid"
	// SettingsNotFound: the settings ConfigMap does not exist.
	SettingsNotFound Reason = "SettingsNotFound"
	// SettingsUnknownKey: a key no setting has.
	SettingsUnknownKey Reason = "SettingsUnknownKey"
	// SettingsInvalidValue: a known key with a value it does not accept.
	SettingsInvalidValue Reason = "SettingsInvalidValue"
	// SettingsBinaryData: a key under binaryData, which is never read.
	SettingsBinaryData Reason = "SettingsBinaryData"
	// SettingsPortConflict: http-port and https-port are the same.
	SettingsPortConflict Reason = "SettingsPortConflict"
)

// Reasons of problems about the TCP services ConfigMap
// (--tcp-services-configmap); each names the key of its entry.
const (
	// TCPServicesRefInvalid: the TCP services ConfigMap is not named as
	// namespace/name.
	TCPServicesRefInvalid Reason = "TCPServicesRefInvalid"
	// TCPServicesNotFound: the TCP services ConfigMap does not exist.
	TCPServicesNotFound Reason = "TCPServicesNotFound"
	// TCPServiceInvalid: a key that is not a port, or a value that is not
	// namespace/name:port[:[PROXY][:[PROXY]]]; the entry is skipped.
	TCPServiceInvalid Reason = "TCPServiceInvalid"
	// TCPServicePortConflict: the port is another listener's (HTTP,
	// HTTPS, stats, the sidecar's admin listeners); the entry is skipped.
	TCPServicePortConflict Reason = "TCPServicePortConflict"
	// TCPServiceUnusable: the Service does not exist, is ExternalName, or
	// has no such TCP port; the entry is skipped.
	TCPServiceUnusable Reason = "TCPServiceUnusable"
)

// Reasons of problems about Ingress annotations.
const (
	// InvalidAnnotation: a haproxy-sidecar.io (or, under
	// --annotations-compat nginx, an ingress-nginx) annotation has a value
	// it does not accept; the annotation is ignored, the routes stay.
	InvalidAnnotation Reason = "InvalidAnnotation"
	// UnknownAnnotation: a haproxy-sidecar.io annotation that does not
	// exist (a typo); ignored.
	UnknownAnnotation Reason = "UnknownAnnotation"
	// UnsupportedAnnotation: an ingress-nginx annotation with no
	// equivalent here (the message says what it would have done), or
	// ingress-nginx annotations read without --annotations-compat nginx.
	UnsupportedAnnotation Reason = "UnsupportedAnnotation"
	// AnnotationOverridden: an ingress-nginx annotation whose
	// haproxy-sidecar.io equivalent is also set, and wins.
	AnnotationOverridden Reason = "AnnotationOverridden"
	// AnnotationSecretNotFound: the Secret an annotation names
	// (auth-basic-secret, backend-ca-secret) does not exist.
	AnnotationSecretNotFound Reason = "AnnotationSecretNotFound"
	// AnnotationSecretInvalid: that Secret lacks its key or holds no
	// usable htpasswd entries or CA certificates.
	AnnotationSecretInvalid Reason = "AnnotationSecretInvalid"
	// AuthHashUnsupported: users of an auth-basic-secret whose hash
	// scheme HAProxy's crypt(3) does not compute (Apache MD5 $apr1$) or
	// the sidecar does not accept; they are left out.
	AuthHashUnsupported Reason = "AuthHashUnsupported"
	// AuthHashTooCostly: users of an auth-basic-secret whose hash costs
	// more CPU than HAProxy may spend checking one (bcrypt cost,
	// SHA-crypt rounds, yescrypt N·r above the limits); they are left
	// out, so that no request and no reload pays for them.
	AuthHashTooCostly Reason = "AuthHashTooCostly"
	// AuthSecretTooCostly: an auth-basic-secret whose users together
	// would add more than the budget to every parse of the
	// configuration; the Ingress gets no user (401 for every request).
	AuthSecretTooCostly Reason = "AuthSecretTooCostly"
	// CanaryWithoutPrimary: a canary Ingress's path whose host and path no
	// other Ingress serves; a canary only takes a share of a route.
	CanaryWithoutPrimary Reason = "CanaryWithoutPrimary"
	// CanaryOtherNamespace: a canary Ingress's path whose host and path
	// an Ingress of another namespace serves; a canary takes a share only
	// of a route of its own namespace, so it gets nothing.
	CanaryOtherNamespace Reason = "CanaryOtherNamespace"
	// CanaryAnnotationIgnored: a route annotation on a canary Ingress.
	// Requests the canary takes follow the primary Ingress's route
	// policy (authentication, source ranges, rate limits, redirects...),
	// as ingress-nginx does; only backend annotations and the canary
	// rules of the canary apply.
	CanaryAnnotationIgnored Reason = "CanaryAnnotationIgnored"
	// UnsupportedProtection: under --annotations-compat nginx, an
	// ingress-nginx annotation that restricts who may reach the
	// Ingress's paths (external authentication, client certificates, a
	// WAF) and that the sidecar does not implement: the paths answer 503
	// instead of being served open.
	UnsupportedProtection Reason = "UnsupportedProtection"
	// AliasHostServed: a server-alias host (or the host a
	// from-to-www-redirect would redirect from) that an Ingress's rule
	// serves: the rule wins whatever its age, and the alias (redirect) is
	// not used.
	AliasHostServed Reason = "AliasHostServed"
	// DefaultBackendSharedHost: a default-backend annotation on a host
	// that an Ingress of another namespace also has rules for: requests
	// no path matches there are not this Ingress's alone, so they keep
	// going where they went.
	DefaultBackendSharedHost Reason = "DefaultBackendSharedHost"
	// DefaultServiceUnusable: the --default-backend-service Service or its
	// port is missing or cannot be used; requests no rule matches get
	// 503.
	DefaultServiceUnusable Reason = "DefaultServiceUnusable"
	// ErrorPagesUnavailable: custom-http-errors without a usable
	// default-backend annotation; the endpoints' error responses are
	// passed unchanged.
	ErrorPagesUnavailable Reason = "ErrorPagesUnavailable"
	// PassthroughUnsupported: on an Ingress with ssl-passthrough, what
	// a TLS stream HAProxy does not decrypt cannot honour: a path other
	// than "/" (Prefix or ImplementationSpecific) of an exact host, an
	// HTTP annotation, a TLS entry for a passed-through host, a
	// spec.defaultBackend, or a canary of the passed-through route. An
	// access restriction (allowlist, auth) on it fails closed: its paths
	// are skipped.
	PassthroughUnsupported Reason = "PassthroughUnsupported"
)

// Reasons of problems about manifest files and the source of objects as a
// whole (created outside this package, by manifest and controller).
const (
	// FileNotFound: the manifest path does not exist (yet).
	FileNotFound Reason = "FileNotFound"
	// FileUnreadable: a file or directory cannot be read (permissions,
	// not a regular file, too large, a dangling symlink).
	FileUnreadable Reason = "FileUnreadable"
	// FileInvalid: a document cannot be parsed or decoded.
	FileInvalid Reason = "FileInvalid"
	// UnusedKind: a document of a kind the sidecar does not use.
	UnusedKind Reason = "UnusedKind"
	// DuplicateObject: an object defined again in another document.
	DuplicateObject Reason = "DuplicateObject"
	// NothingServed: no Ingress is served any more although some were.
	NothingServed Reason = "NothingServed"
)

// Reasons returns every Reason, in declaration order. It is the closed set:
// a test checks that each constant above is in it.
func Reasons() []Reason {
	return []Reason{
		InvalidName, NotOurClass, InvalidHost, InvalidPathType, InvalidPath, InvalidRegex,
		InvalidBackend, UnsupportedBackend, InvalidExternalName, BackendNotFound, BackendPortNotFound,
		NoEndpoints, Conflict, InvalidSecretName, TLSSecretNotFound, TLSSecretInvalid,
		UnsupportedAddressType, InvalidPort, InvalidAddress,
		SettingsRefInvalid, SettingsNotFound, SettingsUnknownKey, SettingsInvalidValue,
		SettingsBinaryData, SettingsPortConflict,
		TCPServicesRefInvalid, TCPServicesNotFound, TCPServiceInvalid, TCPServicePortConflict, TCPServiceUnusable,
		InvalidAnnotation, UnknownAnnotation, UnsupportedAnnotation, AnnotationOverridden,
		AnnotationSecretNotFound, AnnotationSecretInvalid,
		AuthHashUnsupported, AuthHashTooCostly, AuthSecretTooCostly, CanaryWithoutPrimary,
		CanaryOtherNamespace, CanaryAnnotationIgnored, UnsupportedProtection,
		AliasHostServed, DefaultBackendSharedHost, DefaultServiceUnusable, ErrorPagesUnavailable,
		PassthroughUnsupported,
		FileNotFound, FileUnreadable, FileInvalid, UnusedKind, DuplicateObject,
		NothingServed,
	}
}

// Known reports whether r is one of Reasons; the empty reason is not.
func (r Reason) Known() bool { return slices.Contains(Reasons(), r) }

// Problem is one thing that was skipped or ignored, named precisely enough
// for a user to find and fix it. The embedded ObjectRef flattens into the
// JSON object, so /status can list problems as
// {"severity","kind","namespace","name","field","reason","message"}.
type Problem struct {
	Severity Severity `json:"severity"`
	ObjectRef
	// Field is the JSON path inside the object, e.g.
	// "spec.rules[0].http.paths[1].backend.service.port"; empty when the
	// problem is about the whole object.
	Field string `json:"field"`
	// Reason is what programs read; Message is for people.
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

// String is the problem as people read it: object, field and message. The
// reason is left out: the message already says it in words, and reports,
// logs and goldens keep the text they had before reasons existed.
func (p Problem) String() string {
	if p.Field != "" {
		return p.ObjectRef.String() + ": " + p.Field + ": " + p.Message
	}
	return p.ObjectRef.String() + ": " + p.Message
}

// Report is the problem as one line of a report, led by its severity:
// "warning: Ingress default/web: spec.rules[0].host: ...".
func (p Problem) Report() string {
	return p.Severity.String() + ": " + p.String()
}

// plainOrQuoted returns an object's namespace or name as it is, or
// Go-quoted when it holds control or format characters, quotes or
// backslashes: a name from a manifest the API server never checked may
// hold a newline or a terminal escape, which must not forge lines in
// reports and logs.
func plainOrQuoted(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}
