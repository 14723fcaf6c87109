package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Size is what a configuration holds, for the notes of the results table.
type Size struct {
	Backends, Servers, MapFiles, MapEntries int
}

func (s Size) String() string {
	return fmt.Sprintf("%d backends, %d server lines, %d map entries in %d map files", s.Backends, s.Servers, s.MapEntries, s.MapFiles)
}

var mapRef = regexp.MustCompile(`\bmap_(str|beg|dom|end|sub|reg|dir|ip|int)\(([^),]+)\)`)

// MinimalConfig is a hand-written-style configuration of the same size as
// the rendered haproxy.cfg given: the same backends (names) with the same
// server lines, and the same map files, each looked up once (with the
// match method the rendered configuration uses for it) by one frontend
// listening on bind; global holds only default-path, defaults only mode
// and timeouts. None of the rendered frontend logic (host and path
// variables, wildcard and TLS-redirect lookups, headers, HTTPS bind with
// certificates, error backends' responses, balance lines) is in it. It
// returns the map files (paths as the configuration names them, relative
// to its directory), which must sit beside it.
func MinimalConfig(rendered []byte, bind string) (cfg string, maps []string, size Size, err error) {
	method := map[string]string{}
	type backend struct {
		name    string
		servers []string
	}
	var backends []*backend
	var cur *backend
	sc := bufio.NewScanner(bytes.NewReader(rendered))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		for _, m := range mapRef.FindAllStringSubmatch(line, -1) {
			if _, seen := method[m[2]]; !seen {
				method[m[2]] = m[1]
				maps = append(maps, m[2])
			}
		}
		switch {
		case line != trimmed && cur != nil && strings.HasPrefix(trimmed, "server "):
			cur.servers = append(cur.servers, trimmed)
		case strings.HasPrefix(line, "backend "):
			cur = &backend{name: strings.TrimSpace(strings.TrimPrefix(line, "backend "))}
			backends = append(backends, cur)
		case line == trimmed && trimmed != "":
			cur = nil // another section
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, Size{}, err
	}
	if len(backends) == 0 || len(maps) == 0 {
		return "", nil, Size{}, fmt.Errorf("MinimalConfig: %d backends and %d map files in the rendered configuration", len(backends), len(maps))
	}
	var b strings.Builder
	b.WriteString("# Minimal configuration of the same size as a rendered one (e2e/bench):\n")
	b.WriteString("# the same backends, server lines and map files, no other logic.\n")
	b.WriteString("global\n    default-path config\n\n")
	b.WriteString("defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n")
	b.WriteString("frontend f\n    bind " + bind + "\n")
	for k, m := range maps {
		fmt.Fprintf(&b, "    http-request set-var(txn.m%d) req.hdr(host),map_%s(%s)\n", k, method[m], m)
	}
	b.WriteString("    use_backend %[var(txn.m0)] if { var(txn.m0) -m found }\n")
	b.WriteString("    default_backend " + backends[0].name + "\n")
	for _, be := range backends {
		b.WriteString("\nbackend " + be.name + "\n")
		for _, s := range be.servers {
			b.WriteString("    " + s + "\n")
		}
		size.Servers += len(be.servers)
	}
	size.Backends = len(backends)
	size.MapFiles = len(maps)
	return b.String(), maps, size, nil
}

// WriteMinimalDir writes MinimalConfig of renderedDir's haproxy.cfg to
// dir/haproxy.cfg, with its map files' entries (lines that are neither
// empty nor comments; the comments are left out), and returns its size.
func WriteMinimalDir(renderedDir, dir, bind string) (Size, error) {
	rendered, err := os.ReadFile(filepath.Join(renderedDir, "haproxy.cfg"))
	if err != nil {
		return Size{}, err
	}
	cfg, maps, size, err := MinimalConfig(rendered, bind)
	if err != nil {
		return Size{}, err
	}
	for _, m := range maps {
		if filepath.IsAbs(m) || strings.Contains(m, "..") {
			return Size{}, fmt.Errorf("map file %q is not inside the configuration's directory", m)
		}
		data, err := os.ReadFile(filepath.Join(renderedDir, m))
		if err != nil {
			return Size{}, err
		}
		var entries bytes.Buffer
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				size.MapEntries++
				entries.WriteString(line + "\n")
			}
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, m)), 0o755); err != nil {
			return Size{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, m), entries.Bytes(), 0o644); err != nil {
			return Size{}, err
		}
	}
	return size, os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(cfg), 0o644)
}

// ConfigSize is the size of a rendered directory as WriteMinimalDir counts
// it.
func ConfigSize(dir string) (Size, error) {
	tmp, err := os.MkdirTemp("", "bench-size-")
	if err != nil {
		return Size{}, err
	}
	defer os.RemoveAll(tmp)
	return WriteMinimalDir(dir, tmp, "127.0.0.1:1")
}

// TimeCheck runs `bin -c -f cfg` once and returns its wall time, process
// start to exit. A configuration HAProxy rejects is an error with its
// output. (Not its peak RSS: Go starts children with vfork, so the
// child's ru_maxrss starts at this process's own peak.)
func TimeCheck(bin, cfg string) (time.Duration, error) {
	cmd := exec.Command(bin, "-c", "-f", cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s -c -f %s: %v\n%s", bin, cfg, err, tail(out.String(), 2000))
	}
	return took, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
