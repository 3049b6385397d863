//go:build tools

// Package tools records the command this module builds (helm, for `helm lint`
// and `helm template` of the chart in make test-helm) so `go mod tidy` keeps
// its dependencies.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
