package controller

import (
	"context"
	"errors"
	"io/fs"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// FileSource reads manifests from a file or directory on every pass.
// Create it with NewFileSource.
type FileSource struct {
	path   string
	reader *manifest.Reader
}

// NewFileSource reads the manifests under path.
func NewFileSource(path string) *FileSource {
	return &FileSource{path: path, reader: &manifest.Reader{Path: path}}
}

// Inputs loads the manifests. Only a path that does not exist at all is
// an empty cluster (reported on every pass), so that run mode can start
// before the directory is populated; a file that cannot be read is a
// problem on that file (see manifest.Reader), never an empty cluster.
func (f *FileSource) Inputs(context.Context) (render.Inputs, []render.Problem, error) {
	in, problems, err := f.reader.Load()
	if errors.Is(err, fs.ErrNotExist) {
		return render.Inputs{}, []render.Problem{{Severity: render.Notice, ObjectRef: render.ObjectRef{Kind: "File", Name: f.path}, Reason: render.FileNotFound,
			Message: "does not exist (yet); serving no Ingresses"}}, nil
	}
	return in, problems, err
}

// Reread makes the next pass read every file again (SIGHUP).
func (f *FileSource) Reread() { f.reader.Reread() }
