package deploy

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// dockerfile is the top-level Dockerfile as BuildKit reads it.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string
}

func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("BuildKit's parser rejects the Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s (line %d)", w.Short, w.Location.Start.Line)
	}
	var lint []string
	l := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		lint = append(lint, rule+": "+msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, l)
	if err != nil {
		t.Fatalf("BuildKit cannot make stages of the Dockerfile: %v", err)
	}
	for _, w := range lint {
		t.Errorf("BuildKit's linter: %s", w)
	}
	d := &dockerfile{stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value == nil {
				t.Errorf("ARG %s before FROM has no default: the image would depend on --build-arg", kv.Key)
				continue
			}
			d.metaArgs[kv.Key] = *kv.Value
		}
	}
	return d
}

// base is a stage's FROM with the ARGs before the first FROM expanded.
func (d *dockerfile) base(t *testing.T, s instructions.Stage) string {
	t.Helper()
	b := regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(s.BaseName, func(ref string) string {
		name := strings.Trim(ref, "${}")
		v, ok := d.metaArgs[name]
		if !ok {
			t.Errorf("FROM %s: ARG %s has no default before the first FROM", s.BaseName, name)
		}
		return v
	})
	return b
}

func commands[T any](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if x, ok := c.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// goModVersion is go.mod's "go" line.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// officialHAProxy is the official image with a full version:
// haproxy:X.Y.Z[-variant].
var officialHAProxy = regexp.MustCompile(`^(?:docker\.io/library/)?haproxy:((\d+)\.(\d+)\.(\d+))(-[a-z0-9]+)?$`)

// haproxyBranch is the final stage's HAProxy major.minor.
func (d *dockerfile) haproxyBranch(t *testing.T) string {
	t.Helper()
	base := d.base(t, d.stages[len(d.stages)-1])
	m := officialHAProxy.FindStringSubmatch(base)
	if m == nil {
		t.Fatalf("final stage FROM %s is not the official haproxy image with a full version", base)
	}
	return m[2] + "." + m[3]
}

// imageOpenSSL is the OpenSSL series of the official image's Debian
// variants (their libssl3 package).
var imageOpenSSL = map[string]string{"bookworm": "3.0", "trixie": "3.5"}

// runningOpenSSL is the OpenSSL version an HAProxy binary runs on
// ("Running on OpenSSL version : OpenSSL 3.5.7 9 Jun 2026" in haproxy -vv).
func runningOpenSSL(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -vv: %v: %s", bin, err, out)
	}
	m := regexp.MustCompile(`Running on OpenSSL version : OpenSSL (\d+\.\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s -vv names no OpenSSL it runs on", bin)
	}
	return string(m[1])
}

const (
	sidecarInImage = "/usr/local/bin/haproxy-sidecar"
	buildScript    = "scripts/build.sh"
)

// The Dockerfile: a Go build stage as go.mod says, a final stage on a pinned
// official HAProxy image of a branch the tests run against, the binary
// copied from the build stage, a non-root user and the entrypoint.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, then the image)", len(d.stages))
	}
	build, final := d.stages[0], d.stages[1]

	// Build stage: golang:<go.mod's version>[-variant].
	if build.Name != "build" {
		t.Errorf("first stage is named %q, want build", build.Name)
	}
	goBase := d.base(t, build)
	goVersion := goModVersion(t)
	if m := regexp.MustCompile(`^(?:docker\.io/library/)?golang:(\d+\.\d+\.\d+)(-[a-z0-9]+)?$`).FindStringSubmatch(goBase); m == nil {
		t.Errorf("build stage FROM %s: want the official golang image with a pinned version", goBase)
	} else if m[1] != goVersion {
		t.Errorf("build stage FROM %s: Go %s, but go.mod says %s", goBase, m[1], goVersion)
	}
	// The build stage runs on the builder's platform and cross-compiles
	// for the target's: no emulation of arm64 on an amd64 builder.
	if build.Platform != "$BUILDPLATFORM" && build.Platform != "${BUILDPLATFORM}" {
		t.Errorf("build stage FROM --platform=%q, want $BUILDPLATFORM (cross-compile instead of emulating the target)", build.Platform)
	}
	if final.Platform != "" {
		t.Errorf("final stage FROM --platform=%q: the image's base must be the target's platform", final.Platform)
	}
	args := map[string]bool{}
	for _, a := range commands[*instructions.ArgCommand](build) {
		for _, kv := range a.Args {
			args[kv.Key] = true
		}
	}
	for _, want := range []string{"TARGETOS", "TARGETARCH", "VERSION", "COMMIT", "BUILD_DATE"} {
		if !args[want] {
			t.Errorf("build stage has no ARG %s", want)
		}
	}
	// The build runs scripts/build.sh, the script make build runs.
	var out string
	for _, r := range commands[*instructions.RunCommand](build) {
		line := strings.Join(r.CmdLine, " ")
		if strings.Contains(line, "go build") {
			t.Errorf("build stage runs go build itself (%q): it must run %s, as make build does", line, buildScript)
		}
		if strings.Contains(line, buildScript) {
			f := strings.Fields(line)
			out = f[len(f)-1]
		}
	}
	if out == "" {
		t.Fatalf("no RUN of %s in the build stage", buildScript)
	}

	// Final stage: the official haproxy image, pinned to a version.
	hapBase := d.base(t, final)
	m := officialHAProxy.FindStringSubmatch(hapBase)
	if m == nil {
		t.Fatalf("final stage FROM %s: want the official haproxy image with a full version tag (haproxy:X.Y.Z[-variant]; never latest or a branch)", hapBase)
	}
	branch := d.haproxyBranch(t)
	tested := testenv.HAProxies(t)
	bin, ok := tested[branch]
	if !ok {
		t.Errorf("final stage FROM %s: HAProxy %s is not a branch the tests run against (%v)", hapBase, branch, slices.Sorted(maps.Keys(tested)))
	} else {
		v, err := reload.Version(context.Background(), bin)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("image HAProxy %s; the tests run %s's %s (%s)", m[1], branch, v.Full, bin)
		// The image's Debian release decides its OpenSSL, which decides how
		// long HAProxy takes to load certificates (every start and reload):
		// the tested binary must run on the same series.
		variant := strings.TrimPrefix(m[5], "-")
		want, known := imageOpenSSL[variant]
		if !known {
			t.Errorf("final stage FROM %s: variant %q, want one of %v (whose OpenSSL the tests know)", hapBase, variant, slices.Sorted(maps.Keys(imageOpenSSL)))
		} else if got := runningOpenSSL(t, bin); !strings.HasPrefix(got, want+".") {
			t.Errorf("final stage FROM %s ships OpenSSL %s.x, but the tests' HAProxy %s (%s) runs on OpenSSL %s (scripts/install-haproxy.sh)", hapBase, want, branch, bin, got)
		}
	}

	copies := commands[*instructions.CopyCommand](final)
	copied := false
	for _, c := range copies {
		if c.From == build.Name && slices.Equal(c.SourcePaths, []string{out}) && c.DestPath == sidecarInImage {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s %s %s", build.Name, out, sidecarInImage)
	}

	users := commands[*instructions.UserCommand](final)
	if len(users) == 0 {
		t.Errorf("final stage has no USER: the image would run as its base's user, which may be root")
	} else if u := users[len(users)-1].User; u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("final stage runs as %q, want a non-root user", u)
	} else if u != "haproxy" {
		t.Errorf("final stage runs as %q, want the official image's user haproxy (uid 99, which deploy/ sets as runAsUser)", u)
	}

	eps := commands[*instructions.EntrypointCommand](final)
	if len(eps) != 1 || eps[0].PrependShell || !slices.Equal(eps[0].CmdLine, []string{sidecarInImage}) {
		t.Errorf("ENTRYPOINT %+v, want exec form [%q]", eps, sidecarInImage)
	}
	if sig := commands[*instructions.StopSignalCommand](final); len(sig) != 1 || sig[0].Signal != "SIGTERM" {
		t.Errorf("STOPSIGNAL %+v, want SIGTERM (the base image's SIGUSR1 would kill the sidecar uncleanly)", sig)
	}
}

// One place builds the binary: make build runs scripts/build.sh, and so
// does the Dockerfile (checked above). Running the Dockerfile's own RUN line
// and make build gives a static, version-stamped binary without local paths.
func TestBuildIsOneCommand(t *testing.T) {
	n, err := exec.Command("make", "-C", root, "-n", "build", "VERSION=9.8.7", "BIN=/x/haproxy-sidecar").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, n)
	}
	if !strings.Contains(string(n), buildScript+" /x/haproxy-sidecar") || strings.Contains(string(n), "go build") {
		t.Errorf("make build does not just run %s:\n%s", buildScript, n)
	}
	script, err := os.ReadFile(filepath.Join(root, buildScript))
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(script), "go build") + strings.Count(string(script), `"$GO" build`); c != 1 {
		t.Errorf("%s runs go build %d times, want once", buildScript, c)
	}

	d := parseDockerfile(t)
	var run string
	for _, r := range commands[*instructions.RunCommand](d.stages[0]) {
		if l := strings.Join(r.CmdLine, " "); strings.Contains(l, buildScript) {
			run = l
		}
	}
	if run == "" {
		t.Fatalf("no RUN of %s in the build stage", buildScript)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ctxDir := buildContext(t, abs, filepath.Join(tmp, "context"))
	const (
		testVersion = "9.8.7-test.1"
		testCommit  = "0123456789abcdef0123456789abcdef01234567"
		testDate    = "2026-01-02T03:04:05Z"
	)
	type build struct {
		what, bin, arch string
		cmd             *exec.Cmd
	}
	var builds []build
	// The Dockerfile's line as the build stage's shell runs it for each
	// platform buildx is asked for: in the build context (what
	// .dockerignore leaves of this tree), with /out/ a temporary
	// directory and the build arguments BuildKit would set.
	for _, arch := range []string{"amd64", "arm64"} {
		bin := filepath.Join(tmp, "docker-"+arch, "haproxy-sidecar")
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(run, "/out/", filepath.Dir(bin)+"/"))
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "TARGETOS=linux", "TARGETARCH="+arch,
			"VERSION="+testVersion, "COMMIT="+testCommit, "BUILD_DATE="+testDate)
		builds = append(builds, build{"Dockerfile RUN linux/" + arch, bin, arch, cmd})
	}
	makeBin := filepath.Join(tmp, "make", "haproxy-sidecar")
	builds = append(builds, build{"make build", makeBin, runtime.GOARCH,
		exec.Command("make", "-C", abs, "build", "VERSION="+testVersion, "COMMIT="+testCommit, "BUILD_DATE="+testDate, "BIN="+makeBin)})
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, b := range builds {
		if out, err := b.cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", b.what, err, out)
		}
		f, err := elf.Open(b.bin)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine[b.arch] {
			t.Errorf("%s: ELF machine %v, want %v", b.what, f.Machine, machine[b.arch])
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: binary is dynamically linked (CGO_ENABLED=0 missing?)", b.what)
				break
			}
		}
		f.Close()
		data, err := os.ReadFile(b.bin)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), abs+"/") {
			t.Errorf("%s: binary holds the build directory %s (-trimpath missing?)", b.what, abs)
		}
		if b.arch != runtime.GOARCH {
			// Not this machine's, so not run: its stamp is looked
			// for in its data (-trimpath keeps -ldflags out of Go's
			// build information) and its target in Go's.
			bi, err := buildinfo.ReadFile(b.bin)
			if err != nil {
				t.Fatalf("%s: %v", b.what, err)
			}
			for _, s := range bi.Settings {
				if (s.Key == "GOARCH" && s.Value != b.arch) || (s.Key == "GOOS" && s.Value != "linux") {
					t.Errorf("%s: built with %s=%s", b.what, s.Key, s.Value)
				}
			}
			for _, want := range []string{testVersion, testCommit, testDate} {
				if !strings.Contains(string(data), want) {
					t.Errorf("%s: the binary does not hold its stamp %q", b.what, want)
				}
			}
			continue
		}
		v, err := exec.Command(b.bin, "version", "--output", "json", "--haproxy-bin", "/nonexistent/haproxy").Output()
		if err != nil {
			t.Fatalf("%s: version: %v", b.what, err)
		}
		var got struct {
			Version, Commit string
			BuildDate       string `json:"build_date"`
			Platform        string
		}
		if err := json.Unmarshal(v, &got); err != nil {
			t.Fatalf("%s: version --output json: %v\n%s", b.what, err, v)
		}
		if got.Version != testVersion || got.Commit != testCommit || got.BuildDate != testDate || got.Platform != "linux/"+b.arch {
			t.Errorf("%s: version says %+v, want %s, %s, %s, linux/%s", b.what, got, testVersion, testCommit, testDate, b.arch)
		}
	}
	// A version that is not a semantic one is refused, so that no
	// release says "dev" or a bare commit.
	bad := exec.Command("make", "-C", abs, "build", "VERSION=dev", "BIN="+filepath.Join(tmp, "bad"))
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a semantic version") {
		t.Errorf("make build VERSION=dev: %v, want it refused\n%s", err, out)
	}
}

// buildContext copies what `docker build` would send of the tree at src:
// every file .dockerignore (read with Docker's own pattern matcher) leaves.
func buildContext(t *testing.T, src, dst string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		ignored, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		switch {
		case ignored && d.IsDir() && !pm.Exclusions():
			return filepath.SkipDir
		case ignored || d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("build context: %v", err)
	}
	for _, gone := range []string{".git", "bin", "e2e", "testdata"} {
		if _, err := os.Stat(filepath.Join(dst, gone)); err == nil {
			t.Errorf("the build context holds %s: .dockerignore should leave it out", gone)
		}
	}
	return dst
}

// HAProxy's Prometheus exporter is detected from haproxy -vv; both tested
// versions have it (Debian's 2.6, and 3.0 built with USE_PROMEX=1 like the
// official image).
func TestPrometheusExporterDetected(t *testing.T) {
	for version, bin := range testenv.HAProxies(t) {
		ok, err := reload.HasPrometheusExporter(context.Background(), bin)
		if err != nil || !ok {
			t.Errorf("haproxy %s: HasPrometheusExporter = %v, %v; want true", version, ok, err)
		}
	}
	if _, err := reload.HasPrometheusExporter(context.Background(), "/nonexistent/haproxy"); err == nil {
		t.Errorf("HasPrometheusExporter of a missing binary: no error")
	}
}
