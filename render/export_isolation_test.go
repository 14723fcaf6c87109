package render

// EvaluatedIngresses is how many Ingresses the last Render evaluated
// again: the changed ones and those a change reached (engine.dirty). The
// isolation test (isolation_test.go) checks with it that another tenant's
// objects do not make a change of one tenant evaluate more than the
// Ingresses that share its hosts.
func (r *Incremental) EvaluatedIngresses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.engine.dirty)
}
