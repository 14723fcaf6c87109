package main

import (
	_ "github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv" // defines -update for go test ./... -update

	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The image's repository and tag are both set, on every container, and
// deploy/ itself is left as it was. (make dist's own test, TestMakeDist in
// the root package, compares the output with deploy/'s build.)
func TestRenderSetsImage(t *testing.T) {
	const dir = "../../deploy"
	before := snapshot(t, dir)
	for _, c := range []struct{ image, want string }{
		{"", "ghcr.io/haproxy-sidecar/haproxy-sidecar:1.2.3"},
		{"registry.example/team/lb", "registry.example/team/lb:1.2.3"},
	} {
		var out bytes.Buffer
		args := []string{"--deploy", dir, "--version", "1.2.3"}
		if c.image != "" {
			args = append(args, "--image", c.image)
		}
		if err := run(args, &out); err != nil {
			t.Fatal(err)
		}
		images := regexp.MustCompile(`(?m)^\s*image: (\S+)$`).FindAllStringSubmatch(out.String(), -1)
		if len(images) != 2 {
			t.Fatalf("--image %q: %d image lines, want 2 (both containers)", c.image, len(images))
		}
		for _, m := range images {
			if m[1] != c.want {
				t.Errorf("--image %q: image %s, want %s", c.image, m[1], c.want)
			}
		}
	}
	if after := snapshot(t, dir); !bytes.Equal(before, after) {
		t.Errorf("rendering changed %s", dir)
	}
	if err := run([]string{"--deploy", dir}, &bytes.Buffer{}); err == nil {
		t.Errorf("no --version: no error")
	}
}

// snapshot is every file under dir (deploy/monitoring too), named.
func snapshot(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(append(all, path...), b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}
