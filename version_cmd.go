package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haproxy-sidecar/haproxy-sidecar/metrics"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// nextRelease is the release this tree becomes: CHANGELOG.md's newest
// entry and deploy/'s image tag (main_test.go checks both). A build that
// was not given a version says nextRelease-dev; bump it after a release.
const nextRelease = "0.25.0"

// Set at build time by scripts/build.sh:
//
//	-ldflags "-X main.version=0.25.0 -X main.commit=<sha> -X main.buildDate=<RFC 3339>"
//
// (main.go declares version, "dev" until set.) What is not set is derived
// from the build information Go records in every binary (buildInfo).
var (
	commit    string
	buildDate string
)

// semverRe is semver.org's grammar for a version (without a leading v).
var semverRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// pseudoRe finds the timestamp-and-revision part of a Go pseudo-version
// (v0.0.0-20261206165005-9523f5b1c2d3), which is no release.
var pseudoRe = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// build is what `version` and the build_info metric report about this
// binary.
type build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// buildInfo is this binary's version, commit and build date: the values
// stamped with -ldflags, else what Go recorded when it built it. A build
// without a stamped version is a development one: the module's own
// version when `go install ...@vX.Y.Z` built it, else
// nextRelease-dev+<commit>[.dirty], never a bare "dev".
func buildInfo() build {
	b := build{
		Version:   strings.TrimPrefix(version, "v"),
		Commit:    commit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	var revision, vcsTime, modVersion string
	dirty := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		modVersion = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if b.Commit == "" {
		b.Commit = revision
		if dirty && b.Commit != "" {
			b.Commit += "-dirty"
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.BuildDate == "" {
		// Without a stamped date, the commit's time: reproducible, and
		// the closest thing a plain `go build` records.
		b.BuildDate = vcsTime
	}
	if b.BuildDate == "" {
		b.BuildDate = "unknown"
	}
	if b.Version == "" || b.Version == "dev" {
		rev, dirty := strings.CutSuffix(b.Commit, "-dirty")
		if rev == "unknown" {
			rev = ""
		}
		b.Version = devVersion(modVersion, rev, dirty)
	}
	return b
}

// devVersion is the version of a build that was not given one.
func devVersion(modVersion, revision string, dirty bool) string {
	if v := strings.TrimPrefix(modVersion, "v"); semverRe.MatchString(v) && !pseudoRe.MatchString(v) && !strings.Contains(v, "+dirty") {
		return v
	}
	var meta []string
	if len(revision) >= 12 {
		meta = append(meta, revision[:12])
	} else if revision != "" {
		meta = append(meta, revision)
	}
	if dirty {
		meta = append(meta, "dirty")
	}
	v := nextRelease + "-dev"
	if len(meta) > 0 {
		v += "+" + strings.Join(meta, ".")
	}
	return v
}

// haproxyVersion is what `haproxy -v` of bin says, or why it says nothing.
func haproxyVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := reload.Version(ctx, bin)
	if err != nil {
		return "", err
	}
	return v.Full, nil
}

// metricsBuildInfo is buildInfo with HAProxy's version, as the
// haproxy_sidecar_build_info metric labels it.
func metricsBuildInfo(haproxy string) metrics.BuildInfo {
	b := buildInfo()
	return metrics.BuildInfo{Version: b.Version, Commit: b.Commit, BuildDate: b.BuildDate, GoVersion: b.GoVersion, HAProxyVersion: haproxy}
}

// versionReport is `version --output json`.
type versionReport struct {
	build
	HAProxyBin     string `json:"haproxy_bin"`
	HAProxyVersion string `json:"haproxy_version"`
	// HAProxyError says why no HAProxy version was found (not installed,
	// not executable, no version in its output).
	HAProxyError string `json:"haproxy_error,omitempty"`
}

// versionArgs are the version command's flags.
type versionArgs struct{ bin, output string }

func newVersionCommand(stdout, stderr io.Writer) *cobra.Command {
	var a versionArgs
	cmd := &cobra.Command{
		Use:   "version [--haproxy PATH] [--output text|json]",
		Short: "Print the version, commit, build date, Go version and the HAProxy version found",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return result(versionCommand(cmd, a, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	// The default and name of run's and render's --haproxy; --haproxy-bin
	// says the same.
	fs.StringVar(&a.bin, "haproxy", "haproxy", "HAProxy binary whose version is shown")
	fs.StringVar(&a.bin, "haproxy-bin", "haproxy", "the same as --haproxy")
	fs.StringVar(&a.output, "output", "text", "text or json")
	return cmd
}

// versionCommand prints the sidecar's version, commit, build date and Go
// version, and the version of the HAProxy it would run. An HAProxy that
// cannot be found is reported, not an error: the sidecar's own version is
// what was asked.
func versionCommand(cmd *cobra.Command, a versionArgs, stdout, stderr io.Writer) int {
	ctx, bin, output := cmd.Context(), a.bin, a.output
	if output != "text" && output != "json" {
		return usageFailure(stderr, cmd, "--output: %q: want text or json", output)
	}
	r := versionReport{build: buildInfo(), HAProxyBin: bin}
	hv, err := haproxyVersion(ctx, bin)
	if err != nil {
		r.HAProxyError = strings.TrimRight(err.Error(), ": \n")
	} else {
		r.HAProxyVersion = hv
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "version: %v\n", err)
			return 1
		}
		return 0
	}
	haproxy := r.HAProxyVersion + " (" + bin + ")"
	if r.HAProxyError != "" {
		haproxy = "not found (" + r.HAProxyError + ")"
	}
	fmt.Fprintf(stdout, "haproxy-sidecar %s\n  commit:     %s\n  build date: %s\n  go:         %s %s\n  haproxy:    %s\n",
		r.Version, r.Commit, r.BuildDate, r.GoVersion, r.Platform, haproxy)
	return 0
}
