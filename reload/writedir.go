package reload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ownedList is the file in a WriteDir directory that lists the files
// WriteDir wrote there, one slash path per line: the only ones it will
// ever replace or remove.
const ownedList = ".haproxy-sidecar-files"

// Modes of files written by WriteDir: certificates hold private keys and
// haproxy.cfg may hold password hashes (auth-basic-secret's userlists), so
// only their owner may read them, whatever mode an earlier file had. The
// HAProxy that loads them must run as that owner anyway: every
// configuration has certs/default.pem.
const (
	outFileMode fs.FileMode = 0o644
	outKeyMode  fs.FileMode = 0o600
	outDirMode  fs.FileMode = 0o755
)

// secretFile tells the files that get outKeyMode.
func secretFile(name string) bool {
	return strings.HasPrefix(name, "certs/") || name == "haproxy.cfg"
}

// WriteDir writes files into dir for `render --out`, the way Store writes
// a generation but in place: each file is written to a temporary name,
// fsynced and renamed over the old one, so a reader sees the old or the
// new content, never half. It reports whether anything changed.
//
// It only touches what it owns. A directory that does not exist or is
// empty is taken over; a non-empty one is refused unless an earlier
// WriteDir left its list of owned files there. Files it wrote before that
// are no longer part of files are removed; nothing else is.
func WriteDir(dir string, files Files) (changed bool, err error) {
	if err := files.Validate(); err != nil {
		return false, err
	}
	owned, err := ownedFiles(dir)
	if err != nil {
		return false, err
	}
	for _, name := range files.Names() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		mode := outFileMode
		if secretFile(name) {
			mode = outKeyMode
		}
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == mode {
			if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[name]) {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), outDirMode); err != nil {
			return changed, fmt.Errorf("writing %s: %w", dir, err)
		}
		if err := replaceFile(p, files[name], mode); err != nil {
			return changed, err
		}
		changed = true
	}
	for name := range owned {
		if _, keep := files[name]; keep {
			continue
		}
		err := os.Remove(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return changed, fmt.Errorf("removing %s, which is no longer rendered: %w", name, err)
		}
		changed = true
	}
	list := []byte(strings.Join(files.Names(), "\n") + "\n")
	if old, err := os.ReadFile(filepath.Join(dir, ownedList)); err != nil || !bytes.Equal(old, list) {
		if err := replaceFile(filepath.Join(dir, ownedList), list, outFileMode); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// ownedFiles returns the files an earlier WriteDir wrote into dir, creating
// dir if needed, or an error if dir holds files WriteDir did not write.
func ownedFiles(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, outDirMode); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	list, err := os.ReadFile(filepath.Join(dir, ownedList))
	if errors.Is(err, fs.ErrNotExist) {
		if len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty and holds no %s from an earlier render; refusing to write into it (use a new or empty directory)", dir, ownedList)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, ownedList), err)
	}
	owned := map[string]bool{}
	for _, name := range strings.Split(string(list), "\n") {
		// A list edited to name ../x or /etc/x must not make us delete it.
		if name != "" && validName(name) == nil {
			owned[name] = true
		}
	}
	return owned, nil
}

// replaceFile writes data to a temporary file beside p and renames it
// over p: the new file gets mode whatever p's mode was.
func replaceFile(p string, data []byte, mode fs.FileMode) error {
	tmp := filepath.Join(filepath.Dir(p), tmpPrefix+filepath.Base(p))
	_ = os.Remove(tmp)
	if err := writeFileSync(tmp, Bytes(data), mode); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
