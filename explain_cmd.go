package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

func newExplainCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		rf        renderFlags
		manifests []string
	)
	cmd := &cobra.Command{
		Use:   "explain --manifests PATH [--manifests PATH...] [flags] URL...",
		Short: "Say which rule serves each URL, and why",
		Long: `Say which rule serves each URL under the objects in --manifests: the same model
render writes and run serves, walked in the order of the configuration's
frontend. URL: http(s)://host[:port]/path[?query]; without a scheme, http.`,
		Example: `  haproxy-sidecar explain --manifests cluster.yaml https://shop.example.com/cart http://api.example.com/v1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(explainCommand(cmd, rf, manifests, args, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	// Every render flag is accepted, so a render command line can be
	// reused; only --controller-name, --configmap and --annotations-compat
	// change the answer.
	rf.register(fs)
	fs.StringArrayVar(&manifests, "manifests", nil, "file or directory of Kubernetes YAML/JSON manifests (required; repeat for more)")
	return cmd
}

// explainCommand says which rule serves each URL under the objects in
// --manifests.
func explainCommand(cmd *cobra.Command, rf renderFlags, manifests, urls []string, stdout, stderr io.Writer) int {
	if len(manifests) == 0 || len(urls) == 0 {
		return usageFailure(stderr, cmd, "--manifests and at least one URL are required")
	}
	var reqs []render.Request
	for _, a := range urls {
		r, err := render.ParseRequestURL(a)
		if err != nil {
			return usageFailure(stderr, cmd, "%v", err)
		}
		reqs = append(reqs, r)
	}
	opts, err := rf.options()
	if err != nil {
		return usageFailure(stderr, cmd, "%v", err)
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
