// Package metrics is the sidecar's Prometheus metrics, served on the
// health address's /metrics. Everything is observed from the loop's pass
// records and the model HAProxy serves; nothing here touches HAProxy.
package metrics

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/lists"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

const namespace = "haproxy_sidecar"

// Metrics holds the sidecar's collectors in their own registry.
type Metrics struct {
	reg *prometheus.Registry

	passes          *prometheus.CounterVec
	phase           *prometheus.HistogramVec
	reloads         *prometheus.CounterVec
	runtimeCommands *prometheus.CounterVec
	generation      prometheus.Gauge
	lastApplied     prometheus.Gauge
	changeToApplied prometheus.Histogram
	problems        *prometheus.GaugeVec
	served          *prometheus.GaugeVec
	certExpiry      *prometheus.GaugeVec

	mu     sync.Mutex
	expiry map[string]time.Time // PEM → NotAfter of its leaf
	// certs is the model's certificate list the expiry gauges were set
	// from: a pass whose model has the same list leaves them.
	certs []render.Certificate
	// routes and backends are the lists the served gauges were counted
	// from (hosts, endpoints and spares): the next model's are counted
	// from them, reading only what changed (render.CountHosts), or not at
	// all when the renderer hands out the same list.
	routes            []*render.Route
	backends          []*render.Backend
	hosts             int
	endpoints, spares int
}

// OldWorkers returns how many old HAProxy workers (previous generations
// still finishing connections) are alive; it is asked at scrape time.
type OldWorkers func(context.Context) (int, error)

// New registers the sidecar's metrics and Go's runtime and process
// metrics. oldWorkers may be nil.
func New(oldWorkers OldWorkers) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.passes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "passes_total",
		Help: "Passes of the render loop by outcome (unchanged, runtime, reload, written, rejected, failed)."}, []string{"outcome"})
	m.phase = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "pass_phase_duration_seconds",
		Help:    "Duration of each phase of a pass that changed something: read, render, plan, write, check, apply.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"phase"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "reloads_total",
		Help: "HAProxy reloads by result (success, failure)."}, []string{"result"})
	m.runtimeCommands = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runtime_api_commands_total",
		Help: "Runtime API commands sent to HAProxy by kind (add map, del map, set map, set server)."}, []string{"kind"})
	m.generation = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "generation",
		Help: "The configuration generation HAProxy serves."})
	m.lastApplied = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_applied_timestamp_seconds",
		Help: "When HAProxy was last brought up to date with the source (Unix time)."})
	m.changeToApplied = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "change_to_applied_seconds",
		Help:    "Time from an object's change being seen to HAProxy serving it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	m.problems = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "problems",
		Help: "Problems of the last render by object kind, reason and severity."}, []string{"kind", "reason", "severity"})
	m.served = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "served",
		Help: "What the configuration HAProxy serves holds: ingresses, hosts, routes, backends, spare_backends (free spare backends: new Services served without a reload before one grows the pool), endpoints, certificates."}, []string{"what"})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "certificate_expiry_timestamp_seconds",
		Help: "NotAfter of the certificate of each served TLS Secret (Unix time)."}, []string{"namespace", "secret"})
	m.reg.MustRegister(m.passes, m.phase, m.reloads, m.runtimeCommands, m.generation, m.lastApplied,
		m.changeToApplied, m.problems, m.served, m.certExpiry,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if oldWorkers != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "haproxy_old_workers",
			Help: "HAProxy workers of previous generations still finishing connections (-1 when HAProxy does not answer)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				n, err := oldWorkers(ctx)
				if err != nil {
					return -1
				}
				return float64(n)
			}))
	}
	return m
}

// SourceState is what WatchSource reads at scrape time.
type SourceState struct {
	// Up is whether the source (the Kubernetes API server) can be read.
	Up bool
	// SinceSync is how long the source has not been known in sync: 0
	// while it is up.
	SinceSync time.Duration
	// Outages counts the outages since the start.
	Outages int
}

// WatchSource registers the source's metrics, read from state at scrape
// time: haproxy_sidecar_source_up, haproxy_sidecar_source_sync_age_seconds
// and haproxy_sidecar_source_outages_total. An alert on the first or the
// second finds a control-plane outage the data plane rides out.
func (m *Metrics) WatchSource(state func() SourceState) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "source_up",
			Help: "1 while the source (the Kubernetes API server) can be read, 0 during an outage."},
			func() float64 {
				if state().Up {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "source_sync_age_seconds",
			Help: "Seconds since the source was last known in sync with the API server (0 while it is up)."},
			func() float64 { return state().SinceSync.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "source_outages_total",
			Help: "Outages of the source (the API server unreachable) since the sidecar started."},
			func() float64 { return float64(state().Outages) }),
	)
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObservePass follows every pass of the loop.
func (m *Metrics) ObservePass(p controller.Pass) {
	m.passes.WithLabelValues(string(p.Outcome)).Inc()
	switch p.Outcome {
	case controller.OutcomeUnchanged:
		return
	case controller.OutcomeReload:
		m.reloads.WithLabelValues("success").Inc()
	case controller.OutcomeFailed:
		// A failed pass that had a reload cause and an apply phase
		// failed in the reload.
		if p.ReloadCause != "" && p.Phases.Apply > 0 {
			m.reloads.WithLabelValues("failure").Inc()
		}
	}
	for name, d := range map[string]time.Duration{"read": p.Phases.Read, "render": p.Phases.Render, "plan": p.Phases.Plan,
		"write": p.Phases.Write, "check": p.Phases.Check, "apply": p.Phases.Apply} {
		m.phase.WithLabelValues(name).Observe(d.Seconds())
	}
	for _, c := range p.Commands {
		m.runtimeCommands.WithLabelValues(commandKind(c)).Inc()
	}
	switch p.Outcome {
	case controller.OutcomeRuntime, controller.OutcomeReload, controller.OutcomeWritten:
		m.generation.Set(float64(p.Generation))
		m.lastApplied.Set(float64(p.Time.Add(p.Took).UnixNano()) / 1e9)
		if p.ChangeToApplied > 0 {
			m.changeToApplied.Observe(p.ChangeToApplied.Seconds())
		}
	}
}

// commandKind is a runtime API command's first two words ("add map",
// "set server").
func commandKind(cmd string) string {
	words := 0
	for i, c := range cmd {
		if c == ' ' {
			if words++; words == 2 {
				return cmd[:i]
			}
		}
	}
	return cmd
}

// ObserveModel follows the model HAProxy serves and the problems of the
// pass that produced it.
func (m *Metrics) ObserveModel(model *render.Model, problems []render.Problem) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.problems.Reset()
	for _, p := range problems {
		m.problems.WithLabelValues(p.Kind, string(p.Reason), p.Severity.String()).Inc()
	}
	// Model.Routes are sorted by host first: a host's routes are next to
	// each other. (A set of every host, made again each pass, was a sixth
	// of what the sidecar allocated at 50k Ingresses.)
	if !lists.Same(model.Routes, m.routes) || m.routes == nil {
		m.hosts = render.CountHosts(model.Routes, m.routes, m.hosts)
		m.routes = model.Routes
		if m.routes == nil {
			m.routes = []*render.Route{}
		}
	}
	if !lists.Same(model.Backends, m.backends) || m.backends == nil {
		m.endpoints, m.spares = 0, 0
		for _, b := range model.Backends {
			m.endpoints += len(b.Servers)
			if b.Spare && b.OwnName == "" {
				m.spares++
			}
		}
		m.backends = model.Backends
		if m.backends == nil {
			m.backends = []*render.Backend{}
		}
	}
	hosts, endpoints, spares := m.hosts, m.endpoints, m.spares
	// A free spare backend serves nothing: "spare_backends" is the pool's
	// headroom, how many new Services can come before a reload grows it.
	for what, n := range map[string]int{"ingresses": len(model.Served), "hosts": hosts, "routes": len(model.Routes),
		"backends": len(model.Backends) - spares, "spare_backends": spares, "endpoints": endpoints, "certificates": len(model.Certs)} {
		m.served.WithLabelValues(what).Set(float64(n))
	}
	if len(model.Certs) == len(m.certs) && (len(m.certs) == 0 || &model.Certs[0] == &m.certs[0]) {
		return // the same certificates: the renderer hands out the same list
	}
	m.certs = model.Certs
	m.certExpiry.Reset()
	// Passes come often and certificates rarely change: parse each PEM
	// once.
	seen := make(map[string]time.Time, len(model.Certs))
	for i := range model.Certs {
		c := &model.Certs[i]
		notAfter, ok := m.expiry[string(c.PEM)]
		if !ok {
			notAfter, _ = firstNotAfter(c.PEM)
		}
		seen[string(c.PEM)] = notAfter
		if !notAfter.IsZero() {
			m.certExpiry.WithLabelValues(c.Namespace, c.Secret).Set(float64(notAfter.Unix()))
		}
	}
	m.expiry = seen
}

// firstNotAfter is the expiry of the leaf (first) certificate of a PEM
// file.
func firstNotAfter(data []byte) (time.Time, bool) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return time.Time{}, false
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return time.Time{}, false
			}
			return c.NotAfter, true
		}
	}
}

// BuildInfo is what haproxy_sidecar_build_info labels: the sidecar's
// build and the HAProxy it runs.
type BuildInfo struct {
	Version, Commit, BuildDate, GoVersion string
	// HAProxyVersion is the version of the HAProxy binary the sidecar
	// validates with, "unknown" when it has none.
	HAProxyVersion string
}

// ServedVersion asks the running HAProxy its version (the master CLI's
// "show version"): with an HAProxy another container started it is the
// one that matters, and it may differ from the sidecar's binary.
type ServedVersion func(context.Context) (string, error)

// SetBuildInfo registers haproxy_sidecar_build_info, 1 with the build's
// labels, as Prometheus' own *_build_info metrics are: a query joins on it
// to tell which version produced a series. served may be nil; when it
// answers, its version is the haproxy_version label, else info's.
func (m *Metrics) SetBuildInfo(info BuildInfo, served ServedVersion) {
	m.reg.MustRegister(&buildInfoCollector{info: info, served: served,
		desc: prometheus.NewDesc(namespace+"_build_info",
			"1, labelled with the sidecar's version, commit, build date and Go version and the version of the HAProxy it runs.",
			[]string{"version", "commit", "build_date", "go_version", "haproxy_version"}, nil)})
}

type buildInfoCollector struct {
	info   BuildInfo
	served ServedVersion
	desc   *prometheus.Desc
}

func (c *buildInfoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *buildInfoCollector) Collect(ch chan<- prometheus.Metric) {
	hv := c.info.HAProxyVersion
	if c.served != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if v, err := c.served(ctx); err == nil && v != "" {
			hv = v
		}
		cancel()
	}
	if hv == "" {
		hv = "unknown"
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1,
		c.info.Version, c.info.Commit, c.info.BuildDate, c.info.GoVersion, hv)
}
