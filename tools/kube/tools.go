//go:build tools

// Package tools records the commands this module exists to build, so that
// "go mod tidy" keeps their dependencies. Build the API server with:
//
//	go build -o kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
//
// and kube-scheduler and kube-controller-manager alike (e2e/deploy runs
// them; scripts/install-kube.sh builds all three).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
