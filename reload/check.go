package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Location is a position HAProxy names in a message. File is relative to the
// configuration file's directory (slash-separated) when it lies inside it, which
// is how Files names it; otherwise it is as HAProxy printed it. Line is 0 when
// the message names a whole file (a certificate, a map).
type Location struct {
	File string
	Line int
}

// Diagnostic is one ALERT or WARNING line of HAProxy's output.
type Diagnostic struct {
	Severity string // "ALERT" or "WARNING"
	// Location is the most specific position the line names: the innermost
	// "[file:line]" (e.g. a crt-list line inside a bind line), else a referenced
	// file ('certs/a.pem', <maps/x.map>), else the outermost "[file:line]".
	Location
	// Message is the text after the location prefix.
	Message string
	// All lists every location the line names, outermost first: e.g. the
	// haproxy.cfg line of the bind, then the certificate file it loads.
	All []Location
}

func (d Diagnostic) String() string {
	switch {
	case d.File == "":
		return d.Message
	case d.Line == 0:
		return d.File + ": " + d.Message
	}
	return d.File + ":" + strconv.Itoa(d.Line) + ": " + d.Message
}

// CheckError is returned by Check when HAProxy rejects a configuration.
type CheckError struct {
	Config      string       // the -f argument
	ExitCode    int          // haproxy's exit status (-1 if it did not exit normally)
	Output      string       // everything haproxy printed
	Diagnostics []Diagnostic // parsed ALERT/WARNING lines; alerts first
	// Timeout is set when haproxy -c did not finish within it and was
	// killed: the configuration counts as rejected. HAProxy prints no
	// ALERT then, so Diagnostics holds one line saying so, naming no
	// file.
	Timeout time.Duration
}

// TimedOut says whether haproxy -c was killed at its deadline.
func (e *CheckError) TimedOut() bool { return e.Timeout > 0 }

func (e *CheckError) Error() string {
	var alerts []string
	for _, d := range e.Diagnostics {
		if d.Severity == "ALERT" {
			alerts = append(alerts, d.String())
		}
	}
	if len(alerts) == 0 {
		return fmt.Sprintf("haproxy -c %s: exit status %d: %s", e.Config, e.ExitCode, lastLines(e.Output, 3))
	}
	return fmt.Sprintf("haproxy -c %s: %s", e.Config, strings.Join(alerts, "; "))
}

// Alerts returns only the ALERT diagnostics.
func (e *CheckError) Alerts() []Diagnostic { return alertsIn(e.Diagnostics) }

func alertsIn(ds []Diagnostic) []Diagnostic {
	var out []Diagnostic
	for _, d := range ds {
		if d.Severity == "ALERT" {
			out = append(out, d)
		}
	}
	return out
}

// DefaultCheckTimeout bounds haproxy -c when no other deadline is given
// (Check): about 40 times the 0.5 s it takes for a configuration of 10k
// Ingresses here, so that only a configuration that cannot be parsed in
// reasonable time (a Lua script looping at load time, a userlist hash
// costing days) misses it, not a large one on a busy node.
const DefaultCheckTimeout = 20 * time.Second

// Check runs `haproxy -c -f cfgPath` within DefaultCheckTimeout; see
// CheckWithin.
func Check(ctx context.Context, haproxyBin, cfgPath string) error {
	return CheckWithin(ctx, haproxyBin, cfgPath, DefaultCheckTimeout)
}

// CheckWithin runs `haproxy -c -f cfgPath`. It returns nil when HAProxy
// accepts the configuration, a *CheckError when it rejects it or does not
// finish within timeout (TimedOut), and a plain error when haproxy could not
// be run at all or ctx ended first. timeout <= 0 means DefaultCheckTimeout:
// nothing waits on HAProxy's parser unbounded, since a parse that never ends
// would stop every later change.
//
// HAProxy runs with its working directory set to the config's directory so that
// relative paths resolve the same way with or without "default-path config".
// Beware: `haproxy -c` executes lua-load files while parsing.
func CheckWithin(ctx context.Context, haproxyBin, cfgPath string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	// Absolute, since the working directory changes below.
	cfgPath, err := filepath.Abs(cfgPath)
	if err != nil {
		return fmt.Errorf("check %s: %w", cfgPath, err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(checkCtx, haproxyBin, "-c", "-f", cfgPath)
	cmd.Dir = filepath.Dir(cfgPath)
	// Its own process group, killed as a whole: a lua-load script may
	// have started processes (os.execute) that would keep the output
	// pipe, and so Wait, open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err = cmd.Run(); err == nil {
		return nil
	}
	if ctx.Err() == nil && errors.Is(checkCtx.Err(), context.DeadlineExceeded) {
		return &CheckError{
			Config: cfgPath, ExitCode: -1, Output: out.String(), Timeout: timeout,
			Diagnostics: []Diagnostic{{Severity: "ALERT",
				Message: fmt.Sprintf("haproxy -c did not finish within %s and was killed; HAProxy printed no ALERT line naming what it was parsing", timeout)}},
		}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || ctx.Err() != nil {
		return fmt.Errorf("run %s -c -f %s: %w", haproxyBin, cfgPath, err)
	}
	// A config without any listener "has no error" but exits 2. HAProxy
	// would run it under -W -S, serving nothing: for a load balancer that
	// is an outage (a truncated template renders exactly that), so it is
	// refused like any other error. Verified on 2.6.12 and 3.0.11.
	if exitErr.ExitCode() == 2 && strings.Contains(out.String(), "has no error but will not start (no listener)") {
		return &CheckError{
			Config: cfgPath, ExitCode: 2, Output: out.String(),
			Diagnostics: []Diagnostic{{Severity: "ALERT", Location: Location{File: ConfigName},
				Message: "the configuration has no listener: HAProxy would serve nothing"}},
		}
	}
	return &CheckError{
		Config:      cfgPath,
		ExitCode:    exitErr.ExitCode(),
		Output:      out.String(),
		Diagnostics: ParseDiagnostics(out.String(), filepath.Dir(cfgPath)),
	}
}

// Validator returns a Store validate function that runs CheckWithin on the
// candidate directory's haproxy.cfg (timeout <= 0: DefaultCheckTimeout).
func Validator(ctx context.Context, haproxyBin string, timeout time.Duration) func(dir string) error {
	return func(dir string) error {
		return CheckWithin(ctx, haproxyBin, filepath.Join(dir, ConfigName), timeout)
	}
}

var (
	// "[ALERT]    (1234) : config : parsing [/x/haproxy.cfg:42] : ..."
	logLineRe = regexp.MustCompile(`^\[(ALERT|WARNING)\]\s*\(\d+\)\s*:\s?(.*)$`)
	// "[/x/haproxy.cfg:42]" and "[crt-list.txt:3]"; no spaces so "[alpn h2]" is not one.
	bracketLocRe = regexp.MustCompile(`\[([^\[\]\s:]+):(\d+)\]`)
	// "parsing [f:1] : " prefixes, which 2.6 sometimes repeats.
	parsingPrefixRe = regexp.MustCompile(`^(?:parsing\s+)?\[[^\[\]\s:]+:\d+\]\s*:\s*`)
	// 'certs/a.pem' or <maps/x.map>: quoted single tokens that look like file names.
	quotedRe = regexp.MustCompile(`'([^'\s]+)'|<([^<>\s]+)>`)
)

// Summary lines that repeat what the specific lines already say.
var summaryPrefixes = []string{
	"Error(s) found in configuration file",
	"Fatal errors found in configuration",
	"Loading failure",
}

// ParseDiagnostics extracts ALERT and WARNING lines from HAProxy output (of
// `haproxy -c`, a failed start, or a master-CLI reload log). configDir is used to
// make file names relative; pass "" to keep them as printed.
func ParseDiagnostics(output, configDir string) []Diagnostic {
	var alerts, warnings []Diagnostic
	for _, line := range strings.Split(output, "\n") {
		m := logLineRe.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		rest := strings.TrimPrefix(m[2], "config : ")
		if hasAnyPrefix(rest, summaryPrefixes) {
			continue
		}
		d := parseDiagnostic(m[1], rest, configDir)
		if d.Severity == "ALERT" {
			alerts = append(alerts, d)
		} else {
			warnings = append(warnings, d)
		}
	}
	return append(alerts, warnings...)
}

func parseDiagnostic(severity, text, configDir string) Diagnostic {
	d := Diagnostic{Severity: severity, Message: text}
	// Message: drop leading "parsing [f:l] : " (repeated in 2.6).
	for {
		loc := parsingPrefixRe.FindStringIndex(d.Message)
		if loc == nil {
			break
		}
		d.Message = d.Message[loc[1]:]
	}

	var brackets, refs []Location
	seen := map[Location]bool{}
	add := func(list *[]Location, l Location) {
		if !seen[l] {
			seen[l] = true
			*list = append(*list, l)
		}
	}
	for _, m := range bracketLocRe.FindAllStringSubmatch(text, -1) {
		if !looksLikeFile(m[1]) {
			continue // e.g. "[127.0.0.1:8080]" in bind errors
		}
		n, _ := strconv.Atoi(m[2])
		add(&brackets, Location{File: relFile(m[1], configDir), Line: n})
	}
	for _, m := range quotedRe.FindAllStringSubmatch(text, -1) {
		tok := m[1] + m[2]
		if looksLikeFile(tok) {
			add(&refs, Location{File: relFile(tok, configDir)})
		}
	}
	d.All = append(brackets, refs...)
	switch {
	case len(brackets) > 1:
		d.Location = brackets[len(brackets)-1]
	case len(refs) > 0:
		d.Location = refs[0]
	case len(brackets) == 1:
		d.Location = brackets[0]
	}
	return d
}

// fileExts are the extensions a bare quoted name needs to count as a file; names
// with a slash count anyway.
var fileExts = []string{".cfg", ".map", ".pem", ".crt", ".key", ".txt", ".lst", ".lua", ".acl", ".http", ".ca", ".crl"}

func looksLikeFile(tok string) bool {
	if strings.ContainsAny(tok, "@()=,%") || strings.Contains(tok, "://") {
		return false
	}
	if strings.Contains(tok, "/") {
		return true
	}
	ext := strings.ToLower(filepath.Ext(tok))
	for _, e := range fileExts {
		if ext == e {
			return true
		}
	}
	return false
}

// relFile makes an absolute name inside configDir relative to it; relative names
// already are (HAProxy prints them as written, resolved against the config dir).
func relFile(name, configDir string) string {
	if configDir == "" || !filepath.IsAbs(name) {
		return filepath.ToSlash(name)
	}
	for _, dir := range candidateDirs(configDir) {
		if rel, err := filepath.Rel(dir, name); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return filepath.ToSlash(rel)
		}
	}
	return name
}

// candidateDirs: configDir itself and, if it goes through a symlink (current ->
// gen-N), its resolved form, because HAProxy may print either.
func candidateDirs(configDir string) []string {
	dirs := []string{filepath.Clean(configDir)}
	if resolved, err := filepath.EvalSymlinks(configDir); err == nil && resolved != dirs[0] {
		dirs = append(dirs, resolved)
	}
	return dirs
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
