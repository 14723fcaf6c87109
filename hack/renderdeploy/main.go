// Command renderdeploy prints deploy/ as one YAML document stream with the
// image set to a release, what `kubectl kustomize deploy` would print after
// `kustomize edit set image`, made with the kustomize kubectl embeds
// (sigs.k8s.io/kustomize/api), so no kubectl is needed. `make dist`
// (scripts/dist.sh) runs it:
//
//	go run ./hack/renderdeploy --version 0.25.0 [--image REPOSITORY] [--deploy DIR] > haproxy-sidecar-0.25.0.yaml
//
// deploy/ is not changed: it is read into memory, and an overlay there
// sets the image of deploy/kustomization.yaml's `images:` entry.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "renderdeploy:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("renderdeploy", flag.ContinueOnError)
	version := flags.String("version", "", "the release: the image's tag (required)")
	image := flags.String("image", "", "the image's repository (default: deploy/kustomization.yaml's newName)")
	dir := flags.String("deploy", "deploy", "the kustomization to render")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("--version is required")
	}
	out, err := render(*dir, *image, *version)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// render builds the kustomization in dir with its image entry's tag set
// to version (and its repository to image, when given).
func render(dir, image, version string) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	// A copy of deploy/ in memory, so that the overlay beside it is
	// never written to the tree.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/base", rel), data)
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	data, err := mem.ReadFile("/base/kustomization.yaml")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var base types.Kustomization
	if err := yaml.Unmarshal(data, &base); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	if len(base.Images) != 1 {
		return nil, fmt.Errorf("%s/kustomization.yaml: %d images entries, want the one of the sidecar's image", dir, len(base.Images))
	}
	// The name the base's entry leaves the image with is what the
	// overlay's entry matches.
	named := base.Images[0].Name
	if base.Images[0].NewName != "" {
		named = base.Images[0].NewName
	}
	repo := named
	if image != "" {
		repo = image
	}
	overlay := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"../base"},
		Images:    []types.Image{{Name: named, NewName: repo, NewTag: version}},
	}
	y, err := yaml.Marshal(overlay)
	if err != nil {
		return nil, err
	}
	if err := mem.WriteFile("/overlay/kustomization.yaml", y); err != nil {
		return nil, err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/overlay")
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return res.AsYaml()
}
