//go:build tools

// Helm for the chart's tests (charts/switchyard): built from its Go module,
// pinned in go.mod, like the lab's Kubernetes binaries (scripts/lab-build.sh).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
