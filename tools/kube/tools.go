//go:build tools

// Package tools records the commands this module exists to build, so that
// "go mod tidy" keeps their dependencies. Build the API server with:
//
//	go build -o kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
