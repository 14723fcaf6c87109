//go:build tools

// Package tools records the commands this module exists to build, so that
// "go mod tidy" keeps their dependencies: Prometheus' promtool (rule unit
// tests) and the Prometheus Operator's module, whose example/ directory
// holds the CRDs the monitoring objects are applied against. Built by
// scripts/install-prom.sh.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
