// Package syncslots decides whether a DataSource sync may start now. The
// manager runs a few sync workers for the whole cluster; a sync can hold one
// for its whole timeout (a server that never answers). Slots caps the syncs
// one namespace runs at once, below the number of workers, so the sources of
// one namespace can never hold every worker and starve the others.
package syncslots

import (
	"maps"
	"slices"
	"sync"
)

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
	// waiting are, per namespace, the names refused a slot since its last
	// Release (Wait).
	waiting map[string]map[string]bool
}

// New returns Slots allowing limit concurrent syncs per namespace (at least 1).
func New(limit int) *Slots {
	return &Slots{limit: max(limit, 1), running: map[string]int{}, waiting: map[string]map[string]bool{}}
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

// Wait records that name was refused a slot of namespace: the next Release
// there returns it, so the caller can retry it at once instead of after a
// fixed delay (a database's NOTIFY would otherwise wait seconds for a slot
// freed in milliseconds).
func (s *Slots) Wait(namespace, name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting[namespace] == nil {
		s.waiting[namespace] = map[string]bool{}
	}
	s.waiting[namespace][name] = true
}

// Release frees a slot taken by Acquire and returns the names waiting for one
// in the namespace, sorted, which it forgets: each may try again, and those
// refused again wait again.
func (s *Slots) Release(namespace string) []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch n := s.running[namespace]; {
	case n > 1:
		s.running[namespace] = n - 1
	case n == 1:
		delete(s.running, namespace) // no entry per idle namespace
	}
	waiters := slices.Sorted(maps.Keys(s.waiting[namespace]))
	delete(s.waiting, namespace)
	return waiters
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
