package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// explainCommand says which rule serves each URL under the objects in
// --manifests: the same model `render` writes and `run` serves, walked in
// the order of the configuration's frontend.
func explainCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		rf        renderFlags
		manifests stringsFlag
	)
	// Every render flag is accepted, so a render command line can be
	// reused; only --controller-name, --configmap and --annotations-compat
	// change the answer.
	rf.register(fs)
	fs.Var(&manifests, "manifests", "file or directory of Kubernetes YAML/JSON manifests (required; repeat for more)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: haproxy-sidecar explain --manifests PATH [--manifests PATH...] [flags] URL...")
		fmt.Fprintln(stderr, "  URL: http(s)://host[:port]/path[?query]; without a scheme, http.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(manifests) == 0 || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "explain: --manifests and at least one URL are required")
		fs.Usage()
		return 2
	}
	var reqs []render.Request
	for _, a := range fs.Args() {
		r, err := render.ParseRequestURL(a)
		if err != nil {
			fmt.Fprintf(stderr, "explain: %v\n", err)
			return 2
		}
		reqs = append(reqs, r)
	}
	opts, err := rf.options()
	if err != nil {
		fmt.Fprintf(stderr, "explain: %v\n", err)
		return 2
	}
	in, loadProblems, err := manifest.LoadAll(manifests...)
	if err != nil {
		fmt.Fprintf(stderr, "explain: %v\n", err)
		return 1
	}
	m := render.BuildModel(in, opts)
	if n := countWarnings(append(loadProblems, m.Problems...)); n > 0 {
		// A rule that was skipped can be why a request is not served.
		fmt.Fprintf(stderr, "note: %d things were skipped; `haproxy-sidecar render` lists them\n", n)
	}
	for i, r := range reqs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprint(stdout, m.Explain(r))
	}
	return 0
}

func countWarnings(ps []render.Problem) int {
	n := 0
	for _, p := range ps {
		if p.Severity == render.Warning {
			n++
		}
	}
	return n
}
