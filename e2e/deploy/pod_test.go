package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/cpulimit"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// pod runs a PodSpec's containers as local processes: each volume is a
// temporary directory, mount paths in command lines are rewritten to it,
// the image's binaries are this machine's, env comes from the spec.
type pod struct {
	t         *testing.T
	spec      *corev1.PodSpec
	namespace string
	name      string
	volumes   map[string]string // volume name -> directory
	// image maps the image's executables (by name, as on its PATH, and by
	// full path) to this machine's.
	image  map[string]string
	binDir string // a PATH directory holding the image's executables
}

func newPod(t *testing.T, spec *corev1.PodSpec, namespace, name string, image map[string]string) *pod {
	t.Helper()
	p := &pod{t: t, spec: spec, namespace: namespace, name: name, volumes: map[string]string{}, image: image, binDir: t.TempDir()}
	vols := t.TempDir()
	for _, v := range spec.Volumes {
		if v.EmptyDir == nil {
			t.Fatalf("volume %s: only emptyDir volumes can be run here", v.Name)
		}
		dir := filepath.Join(vols, v.Name)
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		p.volumes[v.Name] = dir
	}
	for name, bin := range image {
		if !strings.Contains(name, "/") {
			if err := os.Symlink(bin, filepath.Join(p.binDir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

// env resolves a container's environment as the kubelet does for the
// sources deploy/ may use.
func (p *pod) env(c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.namespace":
				env[e.Name] = p.namespace
			case "metadata.name":
				env[e.Name] = p.name
			default:
				p.t.Fatalf("%s: env %s: fieldRef %s not supported by this test", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = p.resourceField(c, e.ValueFrom.ResourceFieldRef)
		default:
			p.t.Fatalf("%s: env %s: only values, fieldRefs and resourceFieldRefs are supported by this test", c.Name, e.Name)
		}
	}
	return env
}

// resourceField is a resourceFieldRef's value as the kubelet writes it:
// the container's limits.cpu divided by the divisor (1 unless given),
// rounded up; without a limit, the node's CPUs (this machine's).
func (p *pod) resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) string {
	t := p.t
	if ref.Resource != "limits.cpu" {
		t.Fatalf("%s: resourceFieldRef %s not supported by this test", c.Name, ref.Resource)
	}
	target := c
	if ref.ContainerName != "" {
		target = containerNamed(t, p.spec, ref.ContainerName)
	}
	milli := int64(runtime.NumCPU()) * 1000
	if q, ok := target.Resources.Limits[corev1.ResourceCPU]; ok {
		milli = q.MilliValue()
	}
	div := int64(1000)
	if !ref.Divisor.IsZero() {
		div = ref.Divisor.MilliValue()
	}
	return strconv.FormatInt((milli+div-1)/div, 10)
}

// cpuLimit is the CPU limit a container's HAPROXY_CPU_LIMIT-style value
// stands for: its limits.cpu.
func (p *pod) cpuLimit(c *corev1.Container) cpulimit.Limit {
	q, ok := c.Resources.Limits[corev1.ResourceCPU]
	if !ok {
		p.t.Fatalf("%s: no CPU limit", c.Name)
	}
	return cpulimit.Limit(float64(q.MilliValue()) / 1000)
}

// nbthread is the thread count of the pod's HAProxy (show info on the
// master socket in the "run" volume).
func (p *pod) nbthread() int {
	t := p.t
	dir, ok := p.volumes["run"]
	if !ok {
		t.Fatalf("no volume run for the master socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := reload.NewMasterCLI(filepath.Join(dir, "master.sock")).Worker(ctx, "show info")
	if err != nil {
		t.Fatalf("show info: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Nbthread: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("show info without Nbthread: %.300q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand is the kubelet's $(VAR) expansion: defined variables are replaced,
// $$ is a literal $, anything else stays as written.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// argv is the container's command line on this machine: the image's binary
// replaced, $(VAR)s expanded, and every mount path replaced by its volume's
// directory. An absolute path outside the container's mounts fails the
// test: in the pod it would be on the image's read-only file system.
func (p *pod) argv(c *corev1.Container, env map[string]string) []string {
	t := p.t
	if len(c.Command) == 0 {
		t.Fatalf("%s: no command (deploy/ sets it for both containers)", c.Name)
	}
	bin, ok := p.image[c.Command[0]]
	if !ok {
		t.Fatalf("%s: command %q is not an executable of the image (%v)", c.Name, c.Command[0], p.image)
	}
	mounts := append([]corev1.VolumeMount(nil), c.VolumeMounts...)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].MountPath) > len(mounts[j].MountPath) })
	argv := []string{bin}
	for _, a := range append(c.Command[1:], c.Args...) {
		a = expand(a, env)
		flag, value, isFlag := strings.Cut(a, "=")
		if !isFlag || !strings.HasPrefix(flag, "-") {
			flag, value = "", a
		}
		if strings.HasPrefix(value, "/") {
			mapped := false
			for _, m := range mounts {
				if value == m.MountPath || strings.HasPrefix(value, m.MountPath+"/") {
					dir, ok := p.volumes[m.Name]
					if !ok {
						t.Fatalf("%s: mount of unknown volume %s", c.Name, m.Name)
					}
					value, mapped = dir+strings.TrimPrefix(value, m.MountPath), true
					break
				}
			}
			if !mapped {
				t.Fatalf("%s: argument %q is a path on none of the container's volumes", c.Name, a)
			}
		}
		if flag != "" {
			a = flag + "=" + value
		} else {
			a = value
		}
		argv = append(argv, a)
	}
	return argv
}

// port resolves a probe's or Service's port (a number or a container
// port's name) to a number.
func port(t *testing.T, c *corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("%s: no port named %q", c.Name, p.StrVal)
	return 0
}

// process is one running container.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *testenv.LockedBuffer
	done chan struct{}
}

// start runs the container with extra arguments (the kubeconfig standing in
// for the in-cluster configuration).
func (p *pod) start(c *corev1.Container, extra ...string) *process {
	t := p.t
	env := p.env(c)
	argv := append(p.argv(c, env), extra...)
	pr := &process{t: t, name: c.Name, logs: &testenv.LockedBuffer{}, done: make(chan struct{})}
	pr.cmd = exec.Command(argv[0], argv[1:]...)
	pr.cmd.Env = []string{"PATH=" + p.binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
	for k, v := range env {
		pr.cmd.Env = append(pr.cmd.Env, k+"="+v)
	}
	pr.cmd.Stdout, pr.cmd.Stderr = pr.logs, pr.logs
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("container %s: %s", c.Name, strings.Join(argv, " "))
	if err := pr.cmd.Start(); err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	go func() { pr.cmd.Wait(); close(pr.done) }()
	t.Cleanup(func() {
		pr.kill()
		if t.Failed() {
			t.Logf("container %s log:\n%s", c.Name, tail(pr.logs.String(), 12000))
		}
	})
	return pr
}

func (pr *process) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// kill ends the container the way a container restart does: every process
// in it, at once.
func (pr *process) kill() {
	syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	<-pr.done
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
	Timeout:   5 * time.Second,
}

// probe is one HTTP GET probe of a container, as the kubelet sends it (to
// the pod's address; loopback here, inside the test's namespace).
func probe(t *testing.T, c *corev1.Container, pr *corev1.Probe) error {
	if pr == nil || pr.HTTPGet == nil {
		t.Fatalf("%s: probe %+v is not an httpGet probe", c.Name, pr)
	}
	resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port(t, c, pr.HTTPGet.Port)) + pr.HTTPGet.Path)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", pr.HTTPGet.Path, resp.Status)
	}
	return nil
}

// eventually polls f until it returns nil; watched processes must not exit.
func eventually(t *testing.T, limit time.Duration, what string, f func() error, watched ...*process) {
	t.Helper()
	var err error
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, w := range watched {
			if w.exited() {
				t.Fatalf("container %s exited while waiting for %s:\n%s", w.name, what, tail(w.logs.String(), 8000))
			}
		}
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}
