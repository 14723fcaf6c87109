// Package deploy tests what ships: the Dockerfile (read with BuildKit's
// parser) and the kustomize base in deploy/ (built with kustomize's Go API,
// applied to a real kube-apiserver, and its pod run as local processes with
// the ServiceAccount's own token). Like e2e/cluster, the test binary runs
// itself in a private network namespace (root needed); no traffic leaves it.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
)

func TestMain(m *testing.M) { os.Exit(kube.RunInNetns(m)) }

// root is the repository, seen from this package's directory.
const root = "../.."

// built is the output of `kubectl kustomize deploy`, made with the same
// kustomize (sigs.k8s.io/kustomize/api) that kubectl embeds, so CI needs no
// kubectl.
type built struct {
	yaml    []byte
	objects []*unstructured.Unstructured
}

func kustomizeDeploy(t *testing.T) *built { return kustomizeAt(t, "deploy") }

// kustomizeAt builds the kustomization in dir (relative to the repository).
func kustomizeAt(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decodeObjects(t, y)
}

// decodeObjects reads a stream of YAML documents (kustomize's or helm's
// output) into objects.
func decodeObjects(t *testing.T, y []byte) *built {
	t.Helper()
	b := &built{yaml: y}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding objects: %v\n%s", err, y)
		}
		if len(u.Object) > 0 {
			b.objects = append(b.objects, &u)
		}
	}
	return b
}

// find returns the one object of that kind and name.
func (b *built) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range b.objects {
		if o.GetKind() == kind && o.GetName() == name {
			if found != nil {
				t.Fatalf("deploy/ has two %s %s", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("deploy/ has no %s %s", kind, name)
	}
	return found
}

func (b *built) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range b.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// typed converts an object of the output to its client-go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// The names deploy/ uses; the tests read everything else from the output.
const (
	deployName     = "haproxy-sidecar"
	sidecarName    = "sidecar"
	haproxyName    = "haproxy"
	controllerName = "haproxy-sidecar.io/controller"
)

func (b *built) deployment(t *testing.T) *appsv1.Deployment {
	return typed[appsv1.Deployment](t, b.find(t, "Deployment", deployName))
}

func (b *built) service(t *testing.T) *corev1.Service {
	return typed[corev1.Service](t, b.find(t, "Service", deployName))
}

// containerNamed finds a container or init container of the pod.
func containerNamed(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	t.Fatalf("the pod has no container %q", name)
	return nil
}
