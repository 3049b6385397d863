//go:build tools

// Package tools records the kwok command this module builds so `go mod tidy`
// keeps its dependencies. kwok v0.8.0 pins k8s.io/* v0.36, which cannot share a
// build list with hack/tools (k8s.io/kubernetes v1.37), hence its own module.
// See hack/build-controlplane.sh (component kwok) and hack/localcluster.sh.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
