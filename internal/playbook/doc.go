// Package playbook decides, without any Kubernetes I/O, which users of a
// persona get a playbook run, which Job each step runs as, and what the run
// ledger must record. The controller only lists, writes and patches.
package playbook
