package profile

import (
	"context"
	"sort"
	"sync"
)

// Feed delivers the namespaces whose built-in contributions (user.playbooks)
// changed, for the Persona controller. DataSource changes are not on it: the
// DataSource controller announces those itself.
//
// Changes are coalesced per namespace: a publisher never blocks (it may hold a
// playbook reconcile) and never drops a change, and a slow reader receives each
// changed namespace once however many changes it missed.
type Feed struct {
	s       *Store
	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // capacity 1: "pending is not empty"
}

// Subscribe returns a feed of the changes from now on. Close it when done.
func (s *Store) Subscribe() *Feed {
	f := &Feed{s: s, pending: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.feeds[f] = struct{}{}
	s.mu.Unlock()
	return f
}

// Close unsubscribes the feed.
func (f *Feed) Close() {
	f.s.mu.Lock()
	delete(f.s.feeds, f)
	f.s.mu.Unlock()
}

// Next waits for changes and returns the changed namespaces, sorted; nil once
// ctx is done.
func (f *Feed) Next(ctx context.Context) []string {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		}
		f.mu.Lock()
		out := make([]string, 0, len(f.pending))
		for ns := range f.pending {
			out = append(out, ns)
		}
		clear(f.pending)
		f.mu.Unlock()
		if len(out) > 0 {
			sort.Strings(out)
			return out
		}
	}
}

func (f *Feed) add(namespace string) {
	f.mu.Lock()
	f.pending[namespace] = struct{}{}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default: // a wake-up is already due; it will see this namespace too
	}
}

// changed tells every feed that a namespace's built-in contributions changed.
func (s *Store) changed(namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.feeds {
		f.add(namespace)
	}
}
