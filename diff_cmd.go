package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

func newDiffCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		rf        renderFlags
		manifests []string
	)
	cmd := &cobra.Command{
		Use:   "diff --manifests OLD --manifests NEW [render flags]",
		Short: "Print what would change in the load balancer between two snapshots of objects",
		Long: `Print what would change in the load balancer between two snapshots of objects:
the files, the objects behind each hunk, the problems that appear or disappear,
and whether run would apply it through the runtime API or reload.

Exit status: 0 nothing changes, 1 something changes, 2 error.`,
		Example: `  haproxy-sidecar diff --manifests before.yaml --manifests after.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(diffCommand(cmd, rf, manifests, args, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	rf.register(fs)
	rf.registerSpares(fs)
	fs.StringArrayVar(&manifests, "manifests", nil, "the old snapshot, then (again) the new one: files or directories of manifests")
	return cmd
}

// diffCommand prints what would change in the load balancer between two
// snapshots of objects: the files, the objects behind each hunk, the
// problems that appear or disappear, and whether `run` would apply it
// through the runtime API or reload (the planner `run` uses). Exit code 0:
// nothing changes; 1: something does; 2: an error.
func diffCommand(cmd *cobra.Command, rf renderFlags, manifests, args []string, stdout, stderr io.Writer) int {
	if len(manifests) != 2 || len(args) > 0 {
		return usageFailure(stderr, cmd, "give --manifests twice: the old snapshot, then the new one")
	}
	renderFn, err := rf.renderer()
	if err != nil {
		fmt.Fprintf(stderr, "diff: %v\n", err)
		return 2
	}
	type snapshot struct {
		in       render.Inputs
		model    *render.Model
		out      *haproxycfg.Output
		problems []string
	}
	var snaps [2]snapshot
	for i, path := range manifests {
		in, loadProblems, err := manifest.Load(path)
		if err != nil {
			fmt.Fprintf(stderr, "diff: %v\n", err)
			return 2
		}
		// The new snapshot is rendered as run would render it while
		// serving the old one (endpoints keep their server slots).
		var previous *render.Model
		if i == 1 {
			previous = snaps[0].model
		}
		m, out, err := renderFn(in, previous)
		if err != nil {
			fmt.Fprintf(stderr, "diff: rendering %s: %v\n", path, err)
			return 2
		}
		s := snapshot{in: in, model: m, out: out}
		for _, p := range append(loadProblems, m.Problems...) {
			// Files are named by path, which differs between the two
			// snapshots; compare what was said about them.
			s.problems = append(s.problems, strings.ReplaceAll(p.Report(), path, "…"))
		}
		snaps[i] = s
	}
	old, next := snaps[0], snaps[1]
	pred := controller.Predict(old.model, old.out, next.model, next.out)
	switch pred.Method {
	case controller.MethodNone:
		fmt.Fprintln(stdout, "# the generated files do not change")
	case controller.MethodRuntime:
		fmt.Fprintf(stdout, "# applied through the runtime API, without a reload (%d commands):\n", len(pred.Commands))
		for _, c := range pred.Commands {
			fmt.Fprintf(stdout, "#   %s\n", c)
		}
	case controller.MethodReload:
		fmt.Fprintf(stdout, "# needs a reload: %s [%s]\n", pred.Reason, pred.Cause)
	}
	if ch := controller.ObjectChanges(old.in, next.in); len(ch) > 0 {
		fmt.Fprintln(stdout, "# objects that changed:")
		for _, c := range ch {
			fmt.Fprintf(stdout, "#   %s\n", c)
		}
	}
	fmt.Fprint(stdout, controller.FileDiff(old.out, next.out))
	gone, added := setDiff(old.problems, next.problems), setDiff(next.problems, old.problems)
	if len(added) > 0 {
		fmt.Fprintln(stdout, "# problems that appear:")
		for _, p := range added {
			fmt.Fprintf(stdout, "#   + %s\n", p)
		}
	}
	if len(gone) > 0 {
		fmt.Fprintln(stdout, "# problems that disappear:")
		for _, p := range gone {
			fmt.Fprintf(stdout, "#   - %s\n", p)
		}
	}
	if pred.Method == controller.MethodNone {
		return 0
	}
	return 1
}

// setDiff returns the items of a not in b, sorted.
func setDiff(a, b []string) []string {
	inB := make(map[string]bool, len(b))
	for _, x := range b {
		inB[x] = true
	}
	var out []string
	for _, x := range a {
		if !inB[x] {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
