// Package reload owns everything that touches HAProxy: the on-disk configuration
// generations (Store), config validation (Check), the master CLI (MasterCLI) used for
// reloads and runtime updates, and HAProxy's process lifecycle (Process: start,
// adopt, supervise, stop; built on the Supervisor).
//
// The lifecycle lives here, not in a package of its own, because it is made of
// the Supervisor and the MasterCLI and shares their knowledge of HAProxy's
// processes (/proc, the master socket); run mode's package main only turns its
// flags into ProcessOptions, and the loop sees only a Conn.
//
// Typical use by a run loop:
//
//	store, _ := reload.NewStore(configDir)
//	store.Bootstrap(minimalFiles)                 // only if nothing is live yet
//	hap := reload.NewProcess(reload.ProcessOptions{Start: true, Bin: bin,
//		Config: store.ConfigPath(), Socket: sock}) // Start false: HAProxy runs elsewhere
//	hap.Start()                                   // adopts a running master, or starts one
//	defer hap.Stop()                              // returns when no process of it is left
//	err := hap.Wait(ctx)                          // its master has a worker
//	...
//	res, err := store.Apply(ctx, files, reload.Validator(ctx, bin))
//	var ce *reload.CheckError
//	if errors.As(err, &ce) { /* ce.Diagnostics: file:line to blame objects */ }
//	if res.Changed {
//		_, err = hap.Conn().Reload(ctx)           // *reload.ReloadError if HAProxy refused
//	}
//	// endpoint-only changes: hap.Conn().Send(ctx, batch) (Batch: SetMap, SetServerAddr, ...)
//	// (and write the same into the next Apply, since a reload re-reads the files)
//
// HAProxy 2.6 and 3.0 are both supported and tested; differences are handled in
// MasterCLI.Reload and Check.
package reload

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// ConfigName is the name of the main configuration file inside a generation.
// HAProxy is started with -f <configDir>/current/haproxy.cfg.
const ConfigName = "haproxy.cfg"

// Files is the complete content of one configuration generation: relative slash
// paths (e.g. "haproxy.cfg", "maps/exact.map", "certs/a.pem") to file contents.
// The rendered haproxy.cfg uses "default-path config", so these relative paths are
// exactly the names HAProxy resolves and reports (also on the runtime API).
type Files map[string][]byte

// Validate checks that every name is a clean relative path that stays inside the
// generation directory, and that haproxy.cfg is present.
func (f Files) Validate() error {
	if _, ok := f[ConfigName]; !ok {
		return fmt.Errorf("files: missing %s", ConfigName)
	}
	for name := range f {
		if err := validName(name); err != nil {
			return err
		}
	}
	// A name must not be both a file and a directory ("maps" and "maps/a.map").
	for name := range f {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := f[dir]; ok {
				return fmt.Errorf("files: %q is both a file and the directory of %q", dir, name)
			}
		}
	}
	return nil
}

func validName(name string) error {
	switch {
	case name == "", path.IsAbs(name), strings.Contains(name, "\\"),
		path.Clean(name) != name, name == "..", strings.HasPrefix(name, "../"):
		return fmt.Errorf("files: invalid name %q: want a clean relative slash path", name)
	}
	for _, elem := range strings.Split(name, "/") {
		// Dot-files are reserved for the store's own temporary entries.
		if strings.HasPrefix(elem, ".") {
			return fmt.Errorf("files: invalid name %q: elements must not start with '.'", name)
		}
	}
	return nil
}

// Equal reports whether both sets hold the same names with identical bytes.
func (f Files) Equal(o Files) bool {
	if len(f) != len(o) {
		return false
	}
	for name, b := range f {
		ob, ok := o[name]
		if !ok || !bytes.Equal(b, ob) {
			return false
		}
	}
	return true
}

// Names returns the file names in sorted order.
func (f Files) Names() []string { return slices.Sorted(maps.Keys(f)) }
