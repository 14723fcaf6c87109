// Command haproxy-sidecar renders an HAProxy configuration from Kubernetes
// Ingress objects and keeps a co-located HAProxy serving it.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usage is the top-level help: each mode with the flags it needs.
const usage = `haproxy-sidecar renders HAProxy configurations from Kubernetes Ingresses.

Modes and the flags each needs:
  haproxy-sidecar render --manifests PATH (--out DIR | --stdout) [flags]
  haproxy-sidecar run --manifests DIR --config-dir DIR --master-socket PATH [--haproxy-start] [flags]
  haproxy-sidecar run [--kubeconfig FILE] --config-dir DIR --master-socket PATH [flags]   (in a cluster)
  haproxy-sidecar run --init --config-dir DIR
  haproxy-sidecar explain --manifests PATH [flags] URL...
  haproxy-sidecar dump [--ingress NS/NAME | --host HOST | --file PATH | --history [N] | --id ID] [--addr ADDR]
  haproxy-sidecar diff --manifests OLD --manifests NEW [flags]
  haproxy-sidecar migrate --manifests PATH [--manifests PATH...] [--output json]
  haproxy-sidecar version
  haproxy-sidecar completion bash|zsh|fish

Run 'haproxy-sidecar COMMAND --help' for the flags of a command.
Exit status: 0 success, 1 failure, 2 usage error (diff: 1 when something changes).`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// SIGHUP asks `run` to read everything again (the daemon convention);
	// by default it would kill the sidecar and orphan the HAProxy it runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// A log reader that went away must not kill the sidecar: writes to a
	// closed stdout or stderr fail instead.
	signal.Ignore(syscall.SIGPIPE)
	code := run(ctx, os.Args[1:], hup, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs a command line and returns the process exit code: 0 for
// success, 1 for a failure, 2 for a usage error. hup delivers SIGHUP.
func run(ctx context.Context, args []string, hup <-chan os.Signal, stdout, stderr io.Writer) int {
	// --version first is the version command, with its flags
	// (--version --output json).
	if len(args) > 0 && args[0] == "--version" {
		args = append([]string{"version"}, args[1:]...)
	}
	return execute(ctx, newRootCommand(hup, stdout, stderr), args, stderr)
}

// newRootCommand is the command tree. Each run builds its own, so that no
// flag's value outlives it (the tests call run many times).
func newRootCommand(hup <-chan os.Signal, stdout, stderr io.Writer) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "haproxy-sidecar",
		Short: "Render HAProxy configurations from Kubernetes Ingresses and keep HAProxy serving them",
		Long:  usage,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usagef("unknown command %q%s", args[0], hint)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return result(versionCommand(cmd, versionArgs{bin: "haproxy", output: "text"}, stdout, stderr))
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version, as the version command")
	// cobra only suggests within this distance once it has printed an
	// error itself; ours are printed by execute.
	root.SuggestionsMinimumDistance = 2
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newRenderCommand(stdout, stderr),
		newRunCommand(hup, stderr),
		newExplainCommand(stdout, stderr),
		newDumpCommand(stdout, stderr),
		newDiffCommand(stdout, stderr),
		newMigrateCommand(stdout, stderr),
		newVersionCommand(stdout, stderr),
	)
	return root
}
