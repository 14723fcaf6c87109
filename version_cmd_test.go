package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// version prints this build's semantic version, commit, build date and Go
// version, and the version of the HAProxy --haproxy-bin names, with each
// tested HAProxy; in text and JSON.
func TestVersionCommand(t *testing.T) {
	b := buildInfo()
	if !semverRe.MatchString(b.Version) {
		t.Errorf("version %q is not a semantic version", b.Version)
	}
	for name, bin := range testenv.HAProxies(t) {
		hv, err := reload.Version(context.Background(), bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range []string{"--haproxy-bin", "--haproxy"} {
			code, out, errs := runCLI(t, "version", flag, bin)
			if code != 0 {
				t.Fatalf("%s: version %s: exit %d: %s", name, flag, code, errs)
			}
			for _, want := range []string{"haproxy-sidecar " + b.Version + "\n", "commit:     " + b.Commit + "\n",
				"build date: " + b.BuildDate + "\n", "go:         " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
				"haproxy:    " + hv.Full + " (" + bin + ")\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s: version %s prints\n%s\nwithout %q", name, flag, out, want)
				}
			}
		}
		code, out, errs := runCLI(t, "version", "--haproxy-bin", bin, "--output", "json")
		if code != 0 {
			t.Fatalf("%s: version --output json: exit %d: %s", name, code, errs)
		}
		var got versionReport
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: version --output json: %v\n%s", name, err, out)
		}
		want := versionReport{build: b, HAProxyBin: bin, HAProxyVersion: hv.Full}
		if got != want {
			t.Errorf("%s: version --output json = %+v, want %+v", name, got, want)
		}
		for _, key := range []string{`"version"`, `"commit"`, `"build_date"`, `"go_version"`, `"haproxy_version"`} {
			if !strings.Contains(out, key) {
				t.Errorf("%s: JSON has no %s: %s", name, key, out)
			}
		}
	}

	// No HAProxy: said so, and still exit 0.
	missing := filepath.Join(t.TempDir(), "haproxy")
	code, out, errs := runCLI(t, "version", "--haproxy-bin", missing)
	if code != 0 || !strings.Contains(out, "haproxy:    not found (") || !strings.Contains(out, "haproxy-sidecar "+b.Version) {
		t.Errorf("version without HAProxy: exit %d, %q %q; want 0 and \"not found\"", code, out, errs)
	}
	code, out, _ = runCLI(t, "version", "--haproxy-bin", missing, "--output", "json")
	var got versionReport
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.HAProxyVersion != "" || !strings.Contains(got.HAProxyError, missing) {
		t.Errorf("version --output json without HAProxy: exit %d, %v, %+v", code, err, got)
	}
	// An HAProxy that is no HAProxy (a program without a version line).
	code, out, _ = runCLI(t, "version", "--haproxy-bin", "/bin/true")
	if code != 0 || !strings.Contains(out, "haproxy:    not found (no HAProxy version") {
		t.Errorf("version --haproxy-bin /bin/true: exit %d, %q", code, out)
	}

	if code, _, _ := runCLI(t, "--version", "--haproxy-bin", missing); code != 0 {
		t.Errorf("--version: exit %d", code)
	}
	for _, args := range [][]string{{"version", "--output", "yaml"}, {"version", "extra"}, {"version", "--nope"}} {
		if code, _, errs := runCLI(t, args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errs)
		}
	}
	// Help goes to stdout, as kubectl's and helm's.
	if code, out, _ := runCLI(t, "version", "-h"); code != 0 || !strings.Contains(out, "--haproxy-bin") {
		t.Errorf("version -h: exit %d, %q", code, out)
	}
}

// A build not given a version says the next release's pre-release, with
// the commit as build metadata: a semantic version, never a bare "dev".
// One `go install ...@v0.25.0` built says the module's version.
func TestDevVersion(t *testing.T) {
	rev := "9523f5bfc1f6e1ddcaa18f0e46195d1daf4798e1"
	for _, c := range []struct {
		mod, rev string
		dirty    bool
		want     string
	}{
		{"(devel)", rev, false, nextRelease + "-dev+9523f5bfc1f6"},
		{"(devel)", rev, true, nextRelease + "-dev+9523f5bfc1f6.dirty"},
		{"", "", false, nextRelease + "-dev"},
		{"v0.0.0-20261206165005-9523f5bfc1f6", rev, false, nextRelease + "-dev+9523f5bfc1f6"},
		{"v0.25.1-0.20261206165005-9523f5bfc1f6+dirty", rev, true, nextRelease + "-dev+9523f5bfc1f6.dirty"},
		{"v0.25.0", "", false, "0.25.0"},
		{"v0.26.0-rc.1", "", false, "0.26.0-rc.1"},
	} {
		got := devVersion(c.mod, c.rev, c.dirty)
		if got != c.want {
			t.Errorf("devVersion(%q, %q, %v) = %q, want %q", c.mod, c.rev, c.dirty, got, c.want)
		}
		if !semverRe.MatchString(got) {
			t.Errorf("devVersion(%q, ...) = %q: not a semantic version", c.mod, got)
		}
	}
}

// The next release is named the same in CHANGELOG.md, deploy/'s image and
// the binary; deploy/ never runs an unversioned or :dev image.
func TestReleaseVersionPinned(t *testing.T) {
	if !semverRe.MatchString(nextRelease) {
		t.Fatalf("nextRelease %q is not a semantic version", nextRelease)
	}
	changelog, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	heads := regexp.MustCompile(`(?m)^## \[([^\]]+)\]`).FindAllSubmatch(changelog, -1)
	var versions []string
	for _, h := range heads {
		versions = append(versions, string(h[1]))
	}
	if len(versions) == 0 || (versions[0] != nextRelease && !(versions[0] == "Unreleased" && len(versions) > 1 && versions[1] == nextRelease)) {
		t.Errorf("CHANGELOG.md's entries %v: want %s (after Unreleased) first, as version_cmd.go's nextRelease", versions, nextRelease)
	}
	if !strings.Contains(string(changelog), "keepachangelog.com") || !strings.Contains(string(changelog), "semver.org") {
		t.Errorf("CHANGELOG.md does not say it keeps Keep a Changelog's format and Semantic Versioning")
	}

	image := "ghcr.io/haproxy-sidecar/haproxy-sidecar"
	kust, err := os.ReadFile("deploy/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^- name: ` + regexp.QuoteMeta(image) + `\n  newTag: "` + regexp.QuoteMeta(nextRelease) + `"$`).Match(kust) {
		t.Errorf("deploy/kustomization.yaml's images entry is not %s with newTag %q:\n%s", image, nextRelease, kust)
	}
	files, err := filepath.Glob("deploy/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	imageLine := regexp.MustCompile(`(?m)^\s*(?:- )?image:\s*(\S+)`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imageLine.FindAllSubmatch(data, -1) {
			n++
			if got := string(m[1]); got != image+":"+nextRelease {
				t.Errorf("%s: image %s, want %s:%s", f, got, image, nextRelease)
			}
		}
		if strings.Contains(string(data), ":dev") {
			t.Errorf("%s names a :dev image", f)
		}
	}
	if n < 2 {
		t.Errorf("deploy/ has %d image lines, want both containers'", n)
	}
}
