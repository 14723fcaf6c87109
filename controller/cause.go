package controller

import "slices"

// Cause is why a change needs a reload rather than runtime API commands:
// a closed set, like render's problem reasons, so that metrics, tests and
// programs reading /history compare a value, never prose. The human text
// (which file changed, what a failed command said) travels beside it as a
// detail.
type Cause string

// A new cause is a constant below with a comment, and a line in Causes.
const (
	// CauseUnknownState: what HAProxy runs is not known (the first pass,
	// or after a failure or a restart of HAProxy), so only a reload
	// brings it to a known configuration.
	CauseUnknownState Cause = "unknown_state"
	// CauseTemplates: the templates changed; their output may differ
	// anywhere, so it is reloaded (and validated), never patched.
	CauseTemplates Cause = "templates"
	// CauseFileChanged: a file other than haproxy.cfg, the runtime maps
	// and the certificates changed (a CA file, a file a template adds);
	// the reason beside the cause names it.
	CauseFileChanged Cause = "file_changed"
	// CauseFilesRemoved: a file other than a certificate was removed.
	CauseFilesRemoved Cause = "files_removed"
	// CauseCertificates: a certificate changed in a way the runtime API
	// does not apply: offered for other names, a name offered by two
	// certificates, or a chain larger than a CLI payload.
	CauseCertificates Cause = "certificates"
	// CauseBackends: backends were added or removed, or one needs more
	// server slots than it has.
	CauseBackends Cause = "backends"
	// CauseConfigChanged: haproxy.cfg changed beyond server addresses.
	CauseConfigChanged Cause = "config_changed"
	// CauseRuntimeFailed: a runtime API command failed, leaving HAProxy
	// possibly between two states; the reason beside it is the error.
	CauseRuntimeFailed Cause = "runtime_failed"
)

// Causes returns every Cause, in declaration order: the closed set.
func Causes() []Cause {
	return []Cause{CauseUnknownState, CauseTemplates, CauseFileChanged, CauseFilesRemoved, CauseCertificates, CauseBackends,
		CauseConfigChanged, CauseRuntimeFailed}
}

// Known reports whether c is one of Causes; the empty cause is not.
func (c Cause) Known() bool { return slices.Contains(Causes(), c) }
