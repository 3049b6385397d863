// Package syncslots decides whether a DataSource sync may start now. The
// manager runs a few sync workers for the whole cluster; a sync can hold one
// for its whole timeout (a server that never answers). Slots caps the syncs
// one namespace runs at once, below the number of workers, so the sources of
// one namespace can never hold every worker and starve the others.
package syncslots

import "sync"

// DefaultPerNamespace is the per-namespace cap when none is configured.
const DefaultPerNamespace = 2

// PerNamespace is the cap Slots enforces for a configured cap and worker
// count: the configured cap (DefaultPerNamespace when not positive), and at
// most workers-1, so at least one worker stays free for other namespaces
// (with a single worker, the cap is 1 and fairness cannot be had).
func PerNamespace(configured, workers int) int {
	n := configured
	if n <= 0 {
		n = DefaultPerNamespace
	}
	if workers > 0 && n >= workers {
		n = workers - 1
	}
	return max(n, 1)
}

// Slots counts the syncs running per namespace. It is safe for concurrent use.
// A nil *Slots admits every sync (a reconciler built without its manager
// setup, as some tests do).
type Slots struct {
	limit   int
	mu      sync.Mutex
	running map[string]int
}

// New returns Slots allowing limit concurrent syncs per namespace (at least 1).
func New(limit int) *Slots {
	return &Slots{limit: max(limit, 1), running: map[string]int{}}
}

// Acquire reports whether a sync in namespace may start now; when it may, the
// slot is taken and the caller must Release it when the sync ends.
func (s *Slots) Acquire(namespace string) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[namespace] >= s.limit {
		return false
	}
	s.running[namespace]++
	return true
}

// Release frees a slot taken by Acquire.
func (s *Slots) Release(namespace string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch n := s.running[namespace]; {
	case n > 1:
		s.running[namespace] = n - 1
	case n == 1:
		delete(s.running, namespace) // no entry per idle namespace
	}
}

// Running is the number of syncs running in namespace.
func (s *Slots) Running(namespace string) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[namespace]
}

// Limit is the per-namespace cap.
func (s *Slots) Limit() int { return s.limit }
