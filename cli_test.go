package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// commands are the subcommands the help must cover.
var commands = []string{"render", "run", "explain", "dump", "diff", "migrate", "version", "completion"}

// Help, however asked for, goes to stdout and exits 0; flags are shown
// with two dashes; every help names the environment variables.
func TestHelp(t *testing.T) {
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`)
	asks := [][]string{{}, {"--help"}, {"-h"}, {"-help"}, {"help"}}
	for _, c := range commands {
		asks = append(asks, []string{c, "--help"}, []string{c, "-h"}, []string{"help", c})
	}
	for _, args := range asks {
		code, out, errs := runCLI(t, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "Usage:") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
			continue
		}
		if m := singleDash.FindString(out); m != "" {
			t.Errorf("%q: a flag shown with one dash: %q", args, m)
		}
		if !strings.Contains(out, "HAPROXY_SIDECAR_<FLAG>") && !slices.Contains(args, "completion") {
			t.Errorf("%q: the help does not mention the environment variables:\n%s", args, out)
		}
	}
	// The top level says which flags each mode needs.
	_, out, _ := runCLI(t, "--help")
	for _, w := range []string{
		"haproxy-sidecar render --manifests PATH (--out DIR | --stdout)",
		"haproxy-sidecar run --manifests DIR --config-dir DIR --master-socket PATH",
		"haproxy-sidecar run --init --config-dir DIR",
		"haproxy-sidecar explain --manifests PATH [flags] URL...",
		"haproxy-sidecar dump [--ingress NS/NAME",
		"haproxy-sidecar diff --manifests OLD --manifests NEW",
		"haproxy-sidecar migrate --manifests PATH",
		"haproxy-sidecar completion bash|zsh|fish",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("the top-level help lacks %q:\n%s", w, out)
		}
	}
	// A command's help lists its flags with their defaults.
	_, out, _ = runCLI(t, "run", "--help")
	for _, w := range []string{"--master-socket string", "--config-dir string", `--health-addr string`, `(default ":10254")`, "--kubeconfig string", "--haproxy-start"} {
		if !strings.Contains(out, w) {
			t.Errorf("run --help lacks %q:\n%s", w, out)
		}
	}
}

// A usage error is one line with the fix, and where the help is; exit 2,
// nothing on stdout.
func TestUsageErrorOneLine(t *testing.T) {
	tests := []struct {
		args []string
		line string
	}{
		{[]string{"render", "--manifest", "x"}, "haproxy-sidecar render: unknown flag: --manifest; did you mean --manifests?"},
		{[]string{"run", "--master-sock=/x", "--config-dir", "/y"}, "haproxy-sidecar run: unknown flag: --master-sock; did you mean --master-socket?"},
		{[]string{"run", "--grce-period", "1s"}, "haproxy-sidecar run: unknown flag: --grce-period; did you mean --grace-period?"},
		{[]string{"dump", "--zzzzzz"}, "haproxy-sidecar dump: unknown flag: --zzzzzz"},
		{[]string{"rendr"}, `haproxy-sidecar: unknown command "rendr"; did you mean render?`},
		{[]string{"render", "--grace-period", "soon"}, `haproxy-sidecar render: invalid argument "soon" for "--grace-period" flag: time: invalid duration "soon"`},
		{[]string{"render", "--manifests"}, "haproxy-sidecar render: flag needs an argument: --manifests"},
		{[]string{"render", "--manifests", "x", "extra"}, `haproxy-sidecar render: unknown command "extra" for "haproxy-sidecar render"`},
		{[]string{"render"}, "haproxy-sidecar render: --manifests and exactly one of --out or --stdout are required"},
		{[]string{"run", "--config-dir", "/x"}, "haproxy-sidecar run: --config-dir and --master-socket are required (--init needs only --config-dir)"},
		{[]string{"diff", "--manifests", "x"}, "haproxy-sidecar diff: give --manifests twice: the old snapshot, then the new one"},
		{[]string{"run", "--config-dir", "/x", "--master-socket", "/run/m.sock", "--worker-socket", "/run/a\nb.sock"},
			`haproxy-sidecar run: --worker-socket: "/run/a\nb.sock" holds a control character`},
		{[]string{"run", "--config-dir", "/x", "--master-socket", "/run/m.sock", "--worker-socket", "/" + strings.Repeat("d", 95)},
			`haproxy-sidecar run: --worker-socket: "/` + strings.Repeat("d", 95) + `" is 96 bytes; HAProxy binds at most 95 (a UNIX socket's path, with room for its temporary name)`},
		{[]string{"run", "--config-dir", "/x", "--master-socket", "/run/m.sock", "--worker-socket", "/run/m.sock"},
			"haproxy-sidecar run: --worker-socket /run/m.sock is --master-socket"},
	}
	for _, tt := range tests {
		code, out, errs := runCLI(t, tt.args...)
		path := "haproxy-sidecar"
		if !strings.HasPrefix(tt.line, path+":") {
			path += " " + tt.args[0]
		}
		want := tt.line + "\nRun '" + path + " --help' for usage.\n"
		if code != 2 || out != "" || errs != want {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr:\n%s", tt.args, code, out, errs, want)
		}
	}
}

// Every flag can be set from HAPROXY_SIDECAR_<FLAG>; the command line wins;
// a bad value is a usage error naming the variable.
func TestEnvironmentFlags(t *testing.T) {
	golden, err := os.ReadFile("testdata/hosts/expected/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HAPROXY_SIDECAR_MANIFESTS", "testdata/hosts/manifests.yaml")
	t.Setenv("HAPROXY_SIDECAR_STDOUT", "true")
	t.Setenv("HAPROXY_SIDECAR_HAPROXY", testenv.HAProxy26(t))
	code, out, errs := runCLI(t, "render")
	if code != 0 || out != string(golden) {
		t.Fatalf("render from the environment: exit %d, same as the golden configuration: %v\n%s", code, out == string(golden), errs)
	}

	// The command line wins over the environment.
	t.Setenv("HAPROXY_SIDECAR_HTTP_BIND", ":8080")
	code, out, errs = runCLI(t, "render", "--http-bind", ":8081", "--manifests", "testdata/hosts/manifests.yaml")
	if code != 0 || !strings.Contains(out, "\n    bind :8081\n") || strings.Contains(out, "bind :8080") {
		t.Errorf("--http-bind :8081 over HAPROXY_SIDECAR_HTTP_BIND=:8080: exit %d: %s\n%s", code, errs, out)
	}
	code, out, errs = runCLI(t, "render")
	if code != 0 || !strings.Contains(out, "\n    bind :8080\n") {
		t.Errorf("HAPROXY_SIDECAR_HTTP_BIND=:8080: exit %d: %s\n%s", code, errs, out)
	}
	os.Unsetenv("HAPROXY_SIDECAR_HTTP_BIND")

	// A repeatable flag takes a comma-separated list.
	t.Setenv("HAPROXY_SIDECAR_MANIFESTS", "testdata/hosts/manifests.yaml,testdata/hosts/manifests.yaml")
	code, out, errs = runCLI(t, "diff")
	if code != 0 || !strings.Contains(out, "the generated files do not change") {
		t.Errorf("diff with HAPROXY_SIDECAR_MANIFESTS=A,A: exit %d: %s\n%s", code, errs, out)
	}

	// A bad value names the variable, in one line.
	for name, value := range map[string]string{
		"HAPROXY_SIDECAR_GRACE_PERIOD":       "soon",
		"HAPROXY_SIDECAR_STDOUT":             "maybe",
		"HAPROXY_SIDECAR_WORKER_MAX_RELOADS": "ten",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			code, out, errs := runCLI(t, "render")
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "haproxy-sidecar render: "+name+": invalid argument \""+value+"\"") {
				t.Errorf("%s=%s: exit %d, stderr:\n%s", name, value, code, errs)
			}
		})
	}
}

// The built binary reads the environment as a pod spec's env: sets it, and
// `dump` in the same container does not take run's HAPROXY_SIDECAR_HISTORY
// as its own --history.
func TestEnvironmentBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	cmd := exec.Command(sidecartest.Binary(t), "run", "--init")
	cmd.Env = append(os.Environ(), "HAPROXY_SIDECAR_CONFIG_DIR="+dir, "HAPROXY_SIDECAR_HISTORY=7")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run --init with HAPROXY_SIDECAR_CONFIG_DIR: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "current", "haproxy.cfg")); err != nil {
		t.Errorf("run --init did not write into HAPROXY_SIDECAR_CONFIG_DIR: %v", err)
	}

	cmd = exec.Command(sidecartest.Binary(t), "dump", "--addr", "127.0.0.1:1")
	cmd.Env = append(os.Environ(), "HAPROXY_SIDECAR_HISTORY=7")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "127.0.0.1:1/config?") {
		t.Errorf("dump with HAPROXY_SIDECAR_HISTORY set: exit %d, want 1 asking /config:\n%s", code, out)
	}
}

// Go's flag package, which the CLI used before cobra, read -manifests as
// --manifests: scripts written then keep working.
func TestSingleDashLongFlags(t *testing.T) {
	golden, err := os.ReadFile("testdata/hosts/expected/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "render", "-manifests", "testdata/hosts/manifests.yaml", "-stdout", "-haproxy="+testenv.HAProxy26(t))
	if code != 0 || out != string(golden) {
		t.Errorf("render with single-dash flags: exit %d, same as the golden configuration: %v\n%s", code, out == string(golden), errs)
	}
	// Only flag names are rewritten: not a flag's value, nor what follows
	// "--", nor an unknown name.
	root := newRootCommand(nil, nil, nil)
	got := normalizeArgs(root, []string{"render", "--out", "-stdout", "-no-validate", "-x", "-help", "--", "-stdout"})
	want := []string{"render", "--out", "-stdout", "--no-validate", "-x", "--help", "--", "-stdout"}
	if !slices.Equal(got, want) {
		t.Errorf("normalizeArgs: %q, want %q", got, want)
	}
}

// `completion bash|zsh|fish` prints cobra's scripts; bash accepts its own.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runCLI(t, "completion", shell)
		if code != 0 || len(out) < 1000 || !strings.Contains(out, "haproxy-sidecar") {
			t.Errorf("completion %s: exit %d, %d bytes: %s", shell, code, len(out), errs)
			continue
		}
		if shell != "bash" {
			continue
		}
		script := filepath.Join(t.TempDir(), "haproxy-sidecar.bash")
		if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n refuses the bash completion: %v\n%s", err, msg)
		}
	}
	// The completion of a flag's value comes from the binary itself.
	code, out, _ := runCLI(t, "__complete", "run", "--log-format", "")
	if code != 0 || !strings.Contains(out, "json\n") || !strings.Contains(out, "console\n") {
		t.Errorf("__complete run --log-format: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "__complete", "ren")
	if code != 0 || !strings.HasPrefix(out, "render\t") {
		t.Errorf("__complete ren: exit %d:\n%s", code, out)
	}
}

// Every flag of every command is read from its variable (but dump's
// --history, see newDumpCommand), and the variable's name is the flag's.
func TestEveryFlagFromEnvironment(t *testing.T) {
	root := newRootCommand(nil, nil, nil)
	n := 0
	for _, cmd := range root.Commands() {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			value := f.DefValue
			switch f.Value.Type() {
			case "string", "stringArray":
				value = "x"
			case "bool":
				value = "true"
			}
			name := "HAPROXY_SIDECAR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			t.Setenv(name, value)
			defer os.Unsetenv(name)
			f.Changed = false
			if err := bindEnv(cmd); err != nil {
				t.Errorf("%s --%s from %s=%s: %v", cmd.Name(), f.Name, name, value, err)
			}
			if exempt := cmd.Name() == "dump" && f.Name == "history"; f.Changed == exempt {
				t.Errorf("%s --%s: set from %s: %v", cmd.Name(), f.Name, name, f.Changed)
			}
			n++
		})
	}
	if n < 40 {
		t.Errorf("only %d flags seen", n)
	}
}
