//go:build tools

// Package tools pins Helm's CLI, which e2e/deploy/chart_test.go runs
// (helm lint, helm template, helm package) and `make chart` packages the
// chart with; scripts/install-helm.sh builds it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
