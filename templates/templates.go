// Package templates holds the Go templates HAProxy's configuration is
// rendered from. They are embedded into the binary; a user may point
// --templates at a directory of their own with the same file names.
package templates

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"text/template"
)

// Main is the template that renders haproxy.cfg; every other *.tmpl file in
// the directory is parsed alongside it so it can be used with "template".
const Main = "haproxy.cfg.tmpl"

//go:embed *.tmpl
var embedded embed.FS

// Load parses the templates from dir, or the embedded ones when dir is "".
func Load(dir string) (*template.Template, error) {
	var fsys fs.FS = embedded
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	if _, err := fs.Stat(fsys, Main); err != nil {
		return nil, fmt.Errorf("templates %q: %w", dir, err)
	}
	t, err := template.New(Main).Option("missingkey=error").ParseFS(fsys, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parsing templates %q: %w", dirName(dir), err)
	}
	return t, nil
}

func dirName(dir string) string {
	if dir == "" {
		return "(embedded)"
	}
	return dir
}
