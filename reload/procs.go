package reload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The supervisor must know which processes make up an HAProxy, also one it
// did not start (adopted after a sidecar restart) and after the master is
// gone (workers outlive it for a moment). Linux's /proc answers that; Go's
// os package only knows the children it started.

// procInfo is what /proc/<pid>/stat says about a process.
type procInfo struct {
	ppid, pgid int
	state      byte // R, S, D, Z, ...
}

func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	// "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procInfo{ppid: ppid, pgid: pgid, state: f[0][0]}, nil
}

// running reports whether pid exists and is not a zombie. A zombie has
// exited; when we are its parent (PID 1 in a container inherits orphans)
// it is reaped here so it does not linger.
func running(pid int) bool {
	p, err := readProc(pid)
	if err != nil {
		return false
	}
	if p.state == 'Z' {
		if p.ppid == os.Getpid() {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		return false
	}
	return true
}

// cmdline returns a process's arguments.
func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// family returns the running processes of the HAProxy whose master is
// master: the master, its children (current and old workers) and, when
// the master leads its own process group (as when the supervisor started
// it), every member of that group, which includes workers whose master
// has already exited.
func family(master int) []int {
	var pids []int
	leader := false
	if p, err := readProc(master); err == nil && p.state != 'Z' {
		pids = append(pids, master)
		leader = p.pgid == master
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == master {
			continue
		}
		p, err := readProc(pid)
		if err != nil || p.state == 'Z' {
			continue
		}
		if p.ppid == master || p.pgid == master && (leader || !running(master)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalAll sends sig to every pid, ignoring processes that are gone.
func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// argsConfig returns the -f argument of an HAProxy command line.
func argsConfig(args []string) string {
	for i, a := range args {
		if a == "-f" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
