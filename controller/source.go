package controller

import (
	"context"
	"errors"
	"io/fs"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// FileSource reads manifests from a file or directory on every pass.
type FileSource struct {
	Path string
}

// Inputs loads the manifests. A path that does not exist yet is an empty
// cluster, reported once per pass, so that run mode can start before the
// directory is populated.
func (f FileSource) Inputs(context.Context) (render.Inputs, []render.Problem, error) {
	in, problems, err := manifest.Load(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return render.Inputs{}, []render.Problem{{Severity: render.Notice, Kind: "File", Name: f.Path,
			Message: "does not exist (yet); serving no Ingresses"}}, nil
	}
	return in, problems, err
}
