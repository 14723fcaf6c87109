package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
)

// historyFlag is --history with an optional count: "--history",
// "--history=5" or "--history 5" (the number then comes as an argument).
type historyFlag struct {
	set bool
	n   int
}

func (h *historyFlag) String() string { return strconv.Itoa(h.n) }

// Type is pflag's name of the value's type: "bool" shows --history alone
// in the help, as it is mostly given (its count is optional).
func (h *historyFlag) Type() string { return "bool" }
func (h *historyFlag) Set(v string) error {
	h.set = true
	if v == "true" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("want a positive number of passes, got %q", v)
	}
	h.n = n
	return nil
}

// dumpArgs are dump's flags.
type dumpArgs struct {
	addr, ingress, host, file string
	history                   historyFlag
	id                        int64
}

func newDumpCommand(stdout, stderr io.Writer) *cobra.Command {
	var a dumpArgs
	cmd := &cobra.Command{
		Use:   "dump [--ingress NS/NAME | --host HOST | --file PATH | --history [N] | --id ID] [--addr ADDR]",
		Short: "Print the configuration a running sidecar serves, or its history",
		Long: `Ask a running sidecar (its --debug-addr) for the configuration HAProxy runs, or
part of it, or for the passes that changed something. It needs nothing but the
sidecar binary: kubectl exec POD -c sidecar -- haproxy-sidecar dump.
--history is not read from HAPROXY_SIDECAR_HISTORY, which is run's --history.`,
		Example: `  haproxy-sidecar dump --host shop.example.com
  haproxy-sidecar dump --history 5`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(dumpCommand(cmd, &a, args, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&a.addr, "addr", "127.0.0.1:10255", "the sidecar's --debug-addr")
	fs.StringVar(&a.ingress, "ingress", "", "print only what the Ingress NAMESPACE/NAME produced")
	fs.StringVar(&a.host, "host", "", "print only what serves HOST (its routes, backends, TLS)")
	fs.StringVar(&a.file, "file", "", "print one generated file, e.g. maps/exact.map (certificates without their keys)")
	fs.Var(&a.history, "history", "print the last N passes that changed something (--history N or --history=N; default 50), newest first, with their diffs")
	fs.Lookup("history").NoOptDefVal = "true"
	// Not from HAPROXY_SIDECAR_HISTORY: that variable is run's --history
	// (how many passes to keep) in the pod a dump is exec'ed in, and here
	// it would turn every dump into a dump of the history.
	fs.SetAnnotation("history", noEnv, []string{"true"}) //nolint:errcheck // the flag exists
	fs.Int64Var(&a.id, "id", 0, "print one pass of the history")
	return cmd
}

// dumpCommand asks a running sidecar for the configuration HAProxy runs
// (or part of it), or for its history. It needs nothing but the sidecar
// binary, so `kubectl exec POD -c sidecar -- haproxy-sidecar dump` works.
func dumpCommand(cmd *cobra.Command, a *dumpArgs, args []string, stdout, stderr io.Writer) int {
	ctx := cmd.Context()
	addr, ingress, host, file, id := a.addr, a.ingress, a.host, a.file, a.id
	history := &a.history
	// --history's count may come as the argument after it.
	if history.set && len(args) == 1 {
		if err := history.Set(args[0]); err != nil {
			return usageFailure(stderr, cmd, "--history: %v", err)
		}
	} else if len(args) > 0 {
		return usageFailure(stderr, cmd, "unexpected arguments %q", args)
	}
	chosen := 0
	for _, set := range []bool{ingress != "", host != "", file != "", history.set, id != 0} {
		if set {
			chosen++
		}
	}
	if chosen > 1 {
		return usageFailure(stderr, cmd, "give at most one of --ingress, --host, --file, --history and --id")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	base := "http://" + addr
	switch {
	case history.set || id != 0:
		var passes []controller.Pass
		if id != 0 {
			var p controller.Pass
			if code := getJSON(ctx, base+"/history/"+strconv.FormatInt(id, 10), &p, stderr); code != 0 {
				return code
			}
			passes = append(passes, p)
		} else {
			q := ""
			if history.n > 0 {
				q = "?n=" + strconv.Itoa(history.n)
			}
			if code := getJSON(ctx, base+"/history"+q, &passes, stderr); code != 0 {
				return code
			}
		}
		for i := range passes {
			printPass(stdout, &passes[i])
		}
		return 0
	default:
		q := url.Values{}
		for k, v := range map[string]string{"ingress": ingress, "host": host, "file": file} {
			if v != "" {
				q.Set(k, v)
			}
		}
		body, code := get(ctx, base+"/config?"+q.Encode(), stderr)
		if code != 0 {
			return code
		}
		_, _ = stdout.Write(body)
		return 0
	}
}

func get(ctx context.Context, u string, stderr io.Writer) ([]byte, int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "dump: %v\n", err)
		return nil, 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "dump: %v (is the sidecar running with --debug-addr there?)\n", err)
		return nil, 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(stderr, "dump: %v\n", err)
		return nil, 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "dump: %s", strings.TrimSpace(string(body))+"\n")
		return nil, 1
	}
	return body, 0
}

func getJSON(ctx context.Context, u string, v any, stderr io.Writer) int {
	body, code := get(ctx, u, stderr)
	if code != 0 {
		return code
	}
	if err := json.Unmarshal(body, v); err != nil {
		fmt.Fprintf(stderr, "dump: %s: %v\n", u, err)
		return 1
	}
	return 0
}

// printPass prints one history entry for people.
func printPass(w io.Writer, p *controller.Pass) {
	fmt.Fprintf(w, "pass %d at %s: %s", p.ID, p.Time.UTC().Format(time.RFC3339Nano), p.Outcome)
	if p.Generation != 0 {
		fmt.Fprintf(w, ", generation %d", p.Generation)
	}
	fmt.Fprintf(w, ", took %s", p.Took.Round(time.Microsecond))
	if p.ChangeToApplied > 0 {
		fmt.Fprintf(w, " (%s from the change)", p.ChangeToApplied.Round(time.Microsecond))
	}
	fmt.Fprintln(w)
	if len(p.Trigger) > 0 {
		var t []string
		for _, c := range p.Trigger {
			t = append(t, c.String())
		}
		fmt.Fprintf(w, "  trigger: %s\n", strings.Join(t, ", "))
	}
	if p.ReloadCause != "" {
		fmt.Fprintf(w, "  reload because: %s [%s]\n", p.ReloadReason, p.ReloadCause)
	}
	ph := p.Phases
	fmt.Fprintf(w, "  phases: wait %s, read %s, render %s, plan %s, write %s, check %s, apply %s\n",
		ph.Wait.Round(time.Microsecond), ph.Read.Round(time.Microsecond), ph.Render.Round(time.Microsecond), ph.Plan.Round(time.Microsecond),
		ph.Write.Round(time.Microsecond), ph.Check.Round(time.Microsecond), ph.Apply.Round(time.Microsecond))
	if len(p.Commands) > 0 {
		fmt.Fprintln(w, "  runtime API commands:")
		for _, c := range p.Commands {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	if p.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", strings.ReplaceAll(p.Error, "\n", "\n    "))
	}
	for _, pr := range p.NewProblems {
		fmt.Fprintf(w, "  new problem: %s [%s]\n", pr.Report(), pr.Reason)
	}
	for _, pr := range p.GoneProblems {
		fmt.Fprintf(w, "  resolved: %s [%s]\n", pr.Report(), pr.Reason)
	}
	if p.Diff != "" {
		fmt.Fprintln(w, "  diff:")
		for line := range strings.Lines(p.Diff) {
			fmt.Fprintf(w, "    %s", line)
		}
	}
	fmt.Fprintln(w)
}
