// Package acceptance checks the product as its users meet it, against a real
// control plane running the whole operator (internal/testutil/operatortest):
// every example of docs/*.md and README.md is applied and its console
// commands run, config/samples evaluate and answer the headline question,
// and kubectl shows the documented columns, short names and explanations.
// It holds tests only; `go test ./...` (make test) runs them.
package acceptance
