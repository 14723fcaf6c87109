//go:build tools

// Package tools pins Helm's CLIs, 4 and 3, which e2e/deploy/chart_test.go
// runs (helm lint, helm template, helm package) and `make chart` packages
// the chart with (4); scripts/install-helm.sh builds them.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "helm.sh/helm/v4/cmd/helm"
)
