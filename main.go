// Command haproxy-sidecar renders an HAProxy configuration from Kubernetes
// Ingress objects and keeps a co-located HAProxy serving it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `haproxy-sidecar renders HAProxy configurations from Kubernetes Ingresses.

Usage:
  haproxy-sidecar render --manifests PATH (--out DIR | --stdout) [flags]
  haproxy-sidecar run --manifests DIR --config-dir DIR --master-socket PATH [--haproxy-start] [flags]
  haproxy-sidecar run --init --config-dir DIR
  haproxy-sidecar explain --manifests PATH [flags] URL...
  haproxy-sidecar dump [--ingress NS/NAME | --host HOST | --file PATH | --history [N]] [--addr ADDR]
  haproxy-sidecar diff --manifests OLD --manifests NEW [flags]
  haproxy-sidecar migrate --manifests PATH [--manifests PATH...] [--output json]
  haproxy-sidecar version

Run "haproxy-sidecar COMMAND -h" for the flags of a command.
`

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

// run dispatches a subcommand and returns the process exit code: 0 for
// success, 1 for a failure, 2 for a usage error. hup delivers SIGHUP.
func run(ctx context.Context, args []string, hup <-chan os.Signal, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "render":
		return renderCommand(ctx, args[1:], stdout, stderr)
	case "run":
		return runCommand(ctx, args[1:], hup, stderr)
	case "dump":
		return dumpCommand(ctx, args[1:], stdout, stderr)
	case "diff":
		return diffCommand(ctx, args[1:], stdout, stderr)
	case "explain":
		return explainCommand(args[1:], stdout, stderr)
	case "migrate":
		return migrateCommand(args[1:], stdout, stderr)
	case "version", "--version":
		return versionCommand(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
