package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// RunState is what run mode's probes and debug pages read: the
// controller's passes, the config-dir, HAProxy's process and, in
// Kubernetes mode, the cluster source. Its methods are the rules for
// /readyz, its degraded notes, /status, /config and /explain.
type RunState struct {
	Controller *controller.Controller
	Store      *reload.Store
	Process    *reload.Process
	CLI        *reload.MasterCLI // for show proc
	Cluster    *kube.Cluster     // nil with --manifests
	// ServedBefore: HAProxy was serving a configuration an earlier run
	// rendered when this one started.
	ServedBefore bool
}

// statusProcTimeout bounds /status's "show proc" (an answer takes
// milliseconds).
const statusProcTimeout = 2 * time.Second

// Status fills /status.
func (r *RunState) Status(ctx context.Context) Status {
	st := Status{Status: r.Controller.Status(), Config: r.Store.ConfigPath(), StoreRepaired: r.Store.LastRepair()}
	if gen, err := r.Store.CurrentGeneration(); err == nil {
		st.Generation = gen
	}
	// Bounded well below the master CLI's own 10 s: a master that is not
	// up, or stuck parsing a configuration, must not hold up /status,
	// which is where people look to find out why.
	procCtx, cancel := context.WithTimeout(ctx, statusProcTimeout)
	defer cancel()
	if procs, err := r.CLI.ShowProc(procCtx); err != nil {
		st.HAProxyError = err.Error()
	} else {
		// [] rather than null in the JSON when there are none.
		procs.Workers = append(make([]reload.Proc, 0, len(procs.Workers)), procs.Workers...)
		procs.OldWorkers = append(make([]reload.Proc, 0, len(procs.OldWorkers)), procs.OldWorkers...)
		st.HAProxy, st.OldWorkers = &procs, len(procs.OldWorkers)
	}
	if r.Cluster != nil {
		leader := r.Cluster.IsLeader()
		st.Leader = &leader
		api := r.Cluster.API()
		st.Source = &api
	}
	return st
}

// Ready is /readyz's rule: ready while HAProxy runs a configuration that
// was once complete: one rendered from the source by this run, or, after a
// restart, the one an earlier run rendered (adopted with HAProxy, or
// started from the config-dir) while the source cannot be read yet.
// Taking a pod that serves its last good configuration out of its Service
// would turn a control-plane outage into a data-plane one. A pod that has
// never served anything from the source stays unready.
func (r *RunState) Ready() error {
	if err := r.Process.Ready(); err != nil {
		return err
	}
	if r.Controller.Ready() {
		return nil
	}
	if r.ServedBefore && r.Process.Up() {
		return nil
	}
	// Why, when a pass said so (e.g. the first configuration HAProxy did
	// not finish checking), or the API server the first read waits for.
	why := "no configuration rendered from the source is served yet"
	if last := r.Controller.Status().LastError; last != "" {
		first, _, _ := strings.Cut(last, "\n")
		why += ": " + first
	}
	if r.Cluster != nil {
		if p := r.Cluster.API().Problem(time.Now()); p != "" {
			why += "; waiting for the source: " + p
		}
	}
	return errors.New(why)
}

// Degraded lists the faults /readyz names while HAProxy keeps serving.
func (r *RunState) Degraded() []string {
	var out []string
	if r.Cluster != nil {
		if api := r.Cluster.API(); !api.Up && api.DownSince != nil {
			out = append(out, "source: "+api.Problem(time.Now()))
		}
	}
	if r.ServedBefore && !r.Controller.Ready() {
		out = append(out, "source: not read yet; serving the configuration an earlier run rendered from it")
	}
	st := r.Controller.Status()
	if st.LastError != "" {
		first, _, _ := strings.Cut(st.LastError, "\n")
		out = append(out, first)
	}
	if rep := r.Store.LastRepair(); rep != nil && time.Since(rep.At) < 10*time.Minute {
		out = append(out, "config-dir: "+rep.String())
	}
	for _, p := range st.ProblemDetails {
		switch p.Reason {
		case render.FileUnreadable, render.FileInvalid, render.NothingServed:
			out = append(out, p.String())
		}
	}
	return out
}

// Config prints the configuration HAProxy runs now, or part of it
// (/config).
func (r *RunState) Config(q ConfigQuery) (string, bool, error) {
	out := r.Controller.Served()
	if out == nil {
		return "", true, errors.New("no configuration served yet")
	}
	text, err := controller.Dump(out, r.Controller.Problems(), controller.DumpQuery{File: q.File,
		Selector: haproxycfg.Selector{Ingress: q.Ingress, Host: q.Host}})
	if errors.Is(err, controller.ErrNotFound) {
		return "", false, err
	}
	return text, true, err
}

// Explain explains a request against the model HAProxy serves now
// (/explain).
func (r *RunState) Explain(url string) (string, error) {
	req, err := render.ParseRequestURL(url)
	if err != nil {
		return "", err
	}
	m := r.Controller.Model()
	if m == nil {
		return "", errors.New("no configuration served yet")
	}
	return m.Explain(req).String(), nil
}
