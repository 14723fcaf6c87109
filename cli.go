package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix starts the environment variable of every flag:
// HAPROXY_SIDECAR_MASTER_SOCKET is --master-socket. A pod spec sets the
// sidecar's settings in env: as well as in args:.
const envPrefix = "HAPROXY_SIDECAR_"

// envHelp is the footer of every command's help.
const envHelp = `
Environment:
  Every flag can also be set as ` + envPrefix + `<FLAG>, upper case with dashes as
  underscores (--master-socket: ` + envPrefix + `MASTER_SOCKET). A flag on the command
  line wins over its variable. A repeatable flag (--manifests) takes a
  comma-separated list from its variable.
`

// noEnv marks a flag that is not read from the environment (see bindEnv).
const noEnv = "haproxy-sidecar/no-env"

// exitCode is a command's result other than success: 1 for a failure the
// command has reported itself, 2 for a usage error it has reported.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// result turns a command's exit code into what cobra's RunE returns.
func result(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// usageError is a command line that cannot be run, said in one line: what
// is wrong and, where it can be guessed, the fix.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// usageFailure prints a usage error as every command does (one line, then
// where the help is, never every flag) and returns its exit code, 2.
func usageFailure(stderr io.Writer, cmd *cobra.Command, format string, a ...any) int {
	fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", cmd.CommandPath(), fmt.Sprintf(format, a...), cmd.CommandPath())
	return 2
}

// execute runs the command line args against root and returns the exit
// code: 0 success, 1 failure, 2 usage error.
func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + suggestFlag(cmd, err)}
	})
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) }
	// Every command's help ends with the environment variables: the
	// commands inherit the root's template.
	root.SetUsageTemplate(root.UsageTemplate() + envHelp)
	for _, c := range root.Commands() {
		completeFlags(c)
	}
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		// A usage error of ours, of pflag's or of cobra's (an unknown
		// command, a bad value): all are 2.
		return usageFailure(stderr, cmd, "%s", err)
	}
}

// flagFiles, flagDirs and flagValues say what the shell completes for a
// flag's value, whichever command has it.
var (
	flagFiles  = []string{"manifests", "kubeconfig", "haproxy"}
	flagDirs   = []string{"out", "config-dir", "templates"}
	flagValues = map[string][]string{
		"annotations-compat": {"none", "nginx"},
		"log-level":          {"debug", "info", "warn", "error"},
		"log-format":         {"json", "console"},
		"output":             {"text", "json"},
	}
)

// completeFlags registers the completions of cmd's flags' values.
func completeFlags(cmd *cobra.Command) {
	for _, name := range flagFiles {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.MarkFlagFilename(name) // only fails for an unknown flag
		}
	}
	for _, name := range flagDirs {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.MarkFlagDirname(name)
		}
	}
	for name, values := range flagValues {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

// bindEnv sets every flag of cmd that the command line left unset from
// its environment variable, so that the command line wins. A value the
// flag refuses is a usage error naming the variable.
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" || f.Name == "version" || f.Annotations[noEnv] != nil {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		values := []string{v}
		if _, repeatable := f.Value.(pflag.SliceValue); repeatable {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if e := cmd.Flags().Set(f.Name, v); e != nil {
				err = usagef("%s: %v", name, e)
				return
			}
		}
	})
	return err
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// suggestFlag guesses the flag meant by an unknown one ("; did you mean
// --manifests?"). cobra suggests commands but not flags, and pflag only
// says a flag is unknown: the fix is usually a typo or a prefix away.
func suggestFlag(cmd *cobra.Command, err error) string {
	const prefix = "unknown flag: --"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return ""
	}
	typed := strings.TrimPrefix(msg, prefix)
	best, bestDist := "", 3 // at most two edits away
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := levenshtein(typed, f.Name)
		if strings.HasPrefix(f.Name, typed) || strings.HasPrefix(typed, f.Name) {
			d = min(d, 1)
		}
		if d < bestDist || (d == bestDist && f.Name < best) {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return "; did you mean --" + best + "?"
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// normalizeArgs turns single-dash long flags (-manifests, -config-dir=x)
// into double-dash ones. Go's flag package, which the CLI used before
// cobra, accepted both, and scripts and pod specs written then may use
// them; pflag reads -manifests as the shorthands -m -a -n... Only names
// of the command's own long flags are rewritten, never what follows "--"
// or a flag's separate value.
func normalizeArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	// cobra adds --help (and -h) only when the command runs.
	cmd.InitDefaultHelpFlag()
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
		// A flag's value given separately is not a flag, whatever it
		// starts with.
		if strings.HasPrefix(a, "--") && !strings.Contains(a, "=") {
			if f := lookup(a[2:]); f != nil && f.NoOptDefVal == "" && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}
