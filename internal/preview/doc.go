// Package preview computes what applying a Persona would change, free of
// Kubernetes I/O: who enters and who exits compared with the live persona's
// recorded members, and which Playbooks would launch runs for how many users.
package preview
