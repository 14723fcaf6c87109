package admin

import (
	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// Status is /status on the debug address: the loop's state, the
// generation HAProxy's configuration path points at, and HAProxy's
// processes as its master reports them (old workers are previous
// generations still draining connections after a reload). The sidecar
// fills it; the end-to-end tests decode /status into it, so the schema
// is declared once.
type Status struct {
	controller.Status
	Generation   int                `json:"generation"`
	Config       string             `json:"config"`
	OldWorkers   int                `json:"old_workers"`
	HAProxy      *reload.ProcStatus `json:"haproxy,omitempty"`
	HAProxyError string             `json:"haproxy_error,omitempty"`
	// Leader is set in Kubernetes mode: whether this replica writes status.
	Leader *bool `json:"leader,omitempty"`
	// Source is set in Kubernetes mode: whether the API server can be
	// reached, since when it cannot, and the last error.
	Source *kube.APIState `json:"source,omitempty"`
	// StoreRepaired is set when the config-dir's current link was found
	// missing or broken and restored (HAProxy could not have restarted).
	StoreRepaired *reload.Repair `json:"store_repaired,omitempty"`
}
