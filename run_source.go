package main

// Run mode's source side: what objects are read from (a manifests
// directory or the Kubernetes API), what watches it and the templates,
// and the wait for its first full read.

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/metrics"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/watch"
)

// sourceParts is what run mode reads objects from, and what watches it.
type sourceParts struct {
	source  controller.Source
	cluster *kube.Cluster // Kubernetes mode only
	runners []runner
	reread  func() // SIGHUP: files and templates read again
}

// source sets up the manifests directory or the Kubernetes source, and the
// templates watcher.
func (f *runFlags) source(log *zap.Logger, notify func(), ctl func() *controller.Controller) (*sourceParts, error) {
	sp := &sourceParts{}
	rereadSource := func() {}
	if f.manifests != "" {
		fsrc := controller.NewFileSource(f.manifests)
		sp.source, rereadSource = fsrc, fsrc.Reread
		w := &watch.Dir{Path: f.manifests, Notify: notify, Log: log.Named("watch")}
		sp.runners = append(sp.runners, w.Run)
	} else {
		kc, err := newCluster(f, log, notify)
		if err != nil {
			return nil, err
		}
		sp.source, sp.cluster = kc.Source, kc
		sp.runners = append(sp.runners, func(ctx context.Context) error { return kc.Run(ctx, f.statusSyncInterval) })
	}
	reparse := func() {}
	if f.templatesDir != "" {
		reparse = func() {
			r, err := f.renderer()
			if err != nil {
				ctl().TemplatesFailed(err)
				log.Error("templates do not parse; keeping the last good ones", zap.Error(err))
				return
			}
			ctl().SetRenderer(r)
		}
		// An editor or `>` writes a file in steps, and a half-written
		// template can parse and render nonsense: the directory is read
		// again once it has been quiet for a moment. Manifests need no
		// such wait: a file with a document that does not decode is
		// served as last read.
		w := &watch.Dir{Path: f.templatesDir, Log: log.Named("templates"), Notify: reparse, Settle: templateSettle}
		sp.runners = append(sp.runners, w.Run)
	}
	sp.reread = func() { rereadSource(); reparse() }
	return sp, nil
}

// applied is the loop's OnApplied: status and Events in Kubernetes mode,
// and the problems of a pass that changed something in the log.
func (sp *sourceParts) applied(log *zap.Logger, mets *metrics.Metrics) func(controller.Event) {
	return func(ev controller.Event) {
		mets.ObserveModel(ev.Model, ev.Problems)
		if sp.cluster != nil {
			sp.cluster.Applied(ev.Model)
		}
		if !ev.Changed {
			return
		}
		for _, p := range ev.Problems {
			if p.Severity == render.Warning {
				log.Warn("skipped", zap.String("problem", p.Report()), zap.String("reason", string(p.Reason)),
					zap.String("object", p.ObjectRef.String()), zap.String("field", p.Field))
			}
		}
	}
}

// start runs the source's watchers. In Kubernetes mode it first waits for
// the informers: the first render must see the whole cluster, not a
// partial cache. A sidecar with nothing to serve gives up after
// sourceSyncLimit (the pod is restarted and says why); one whose HAProxy
// serves a configuration from an earlier run waits as long as it takes
// (the API server may be away), ready and saying so on /readyz.
func (sp *sourceParts) start(ctx context.Context, g *group, servedBefore bool) error {
	if sp.cluster != nil {
		g.run("kubernetes source", sp.cluster.Source.Run)
		syncCtx, cancel := ctx, context.CancelFunc(func() {})
		if !servedBefore {
			syncCtx, cancel = context.WithTimeout(ctx, sourceSyncLimit)
		}
		err := sp.cluster.WaitForSync(syncCtx)
		cancel()
		if err != nil {
			return err
		}
	}
	for i, r := range sp.runners {
		g.run(fmt.Sprintf("watcher %d", i), r)
	}
	return nil
}

// sourceSyncLimit is how long a sidecar with nothing served yet waits for
// the source's first full read.
const sourceSyncLimit = 2 * time.Minute

// templateSettle is how long a templates directory must be quiet before
// it is read again.
const templateSettle = 150 * time.Millisecond
