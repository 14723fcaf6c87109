package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// make dist VERSION=x.y.z writes a release's files: both platforms'
// binaries (static, of their ELF machine), deploy/ rendered with the
// versioned image and otherwise as kustomize builds it, the Helm chart
// packaged with that version and appVersion, and SHA256SUMS over exactly
// those files. A version that is not a semantic one is
// refused before anything is built.
func TestMakeDist(t *testing.T) {
	const v = "0.25.0-rc.1"
	dist := t.TempDir()
	out, err := exec.Command("make", "dist", "VERSION="+v, "DIST="+dist).CombinedOutput()
	if err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	bins := map[string]elf.Machine{
		"haproxy-sidecar-" + v + "-linux-amd64": elf.EM_X86_64,
		"haproxy-sidecar-" + v + "-linux-arm64": elf.EM_AARCH64,
	}
	manifests := "haproxy-sidecar-" + v + ".yaml"
	chart := "haproxy-sidecar-" + v + ".tgz"
	want := []string{"SHA256SUMS", manifests, chart}
	for b := range bins {
		want = append(want, b)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("dist holds %v, want %v", names, want)
	}

	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	summed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q: not sha256sum's format", line)
		}
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatalf("SHA256SUMS names %s: %v", name, err)
		}
		h := sha256.Sum256(data)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s %s, the file's is %x", name, sum, h)
		}
		summed[name] = true
	}
	for _, n := range want {
		if n != "SHA256SUMS" && !summed[n] {
			t.Errorf("SHA256SUMS has no line for %s", n)
		}
	}

	for name, machine := range bins {
		f, err := elf.Open(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("%s: ELF machine %v, want %v", name, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked", name)
			}
		}
		f.Close()
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(v)) {
			t.Errorf("%s does not hold its version %s", name, v)
		}
	}
	// This machine's one runs.
	if native := filepath.Join(dist, "haproxy-sidecar-"+v+"-linux-"+goruntime.GOARCH); goruntime.GOOS == "linux" {
		out, err := exec.Command(native, "version", "--haproxy-bin", "/nonexistent").Output()
		if err != nil || !strings.HasPrefix(string(out), "haproxy-sidecar "+v+"\n") {
			t.Errorf("dist's binary: version says %q (%v), want %s", out, err, v)
		}
	}

	// The manifests: deploy/ as kustomize builds it, object for object,
	// with every container's image the versioned one.
	rendered, err := os.ReadFile(filepath.Join(dist, manifests))
	if err != nil {
		t.Fatal(err)
	}
	got := decodeObjects(t, rendered)
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "deploy")
	if err != nil {
		t.Fatal(err)
	}
	base, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	wantObjs := decodeObjects(t, base)
	if len(got) != len(wantObjs) {
		t.Fatalf("%s: %d objects, deploy/ builds %d", manifests, len(got), len(wantObjs))
	}
	image := "ghcr.io/haproxy-sidecar/haproxy-sidecar:" + v
	deployments := 0
	for i, u := range got {
		w := wantObjs[i]
		if u.GetKind() != w.GetKind() || u.GetName() != w.GetName() || u.GetNamespace() != w.GetNamespace() {
			t.Errorf("%s: object %d is %s %s/%s, deploy/ builds %s %s/%s", manifests, i,
				u.GetKind(), u.GetNamespace(), u.GetName(), w.GetKind(), w.GetNamespace(), w.GetName())
			continue
		}
		if u.GetKind() != "Deployment" {
			continue
		}
		deployments++
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			t.Fatal(err)
		}
		spec := d.Spec.Template.Spec
		cs := append(slices.Clone(spec.InitContainers), spec.Containers...)
		for _, c := range cs {
			if c.Image != image {
				t.Errorf("%s: container %s runs %s, want %s", manifests, c.Name, c.Image, image)
			}
		}
	}
	if deployments != 1 {
		t.Errorf("%s: %d Deployments, want 1", manifests, deployments)
	}

	// The chart's package: its Chart.yaml has the release's version, and
	// the image tag it defaults to (appVersion) is the same.
	chartYAML := chartFile(t, filepath.Join(dist, chart), "haproxy-sidecar/Chart.yaml")
	for _, line := range []string{"version: " + v, "appVersion: " + v} {
		if !slices.Contains(strings.Split(chartYAML, "\n"), line) {
			t.Errorf("%s: Chart.yaml has no line %q:\n%s", chart, line, chartYAML)
		}
	}

	for _, bad := range [][]string{{"dist", "DIST=" + dist}, {"dist", "VERSION=dev", "DIST=" + dist}, {"dist", "VERSION=1.2", "DIST=" + dist}} {
		if out, err := exec.Command("make", bad...).CombinedOutput(); err == nil {
			t.Errorf("make %q: no error\n%s", bad, out)
		}
	}
}

// chartFile reads one file of a packaged chart (a gzipped tar).
func chartFile(t *testing.T, tgz, name string) string {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", tgz, name, err)
		}
		if h.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
	}
}

func decodeObjects(t *testing.T, y []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if u.Object != nil {
			objs = append(objs, &u)
		}
	}
	return objs
}
