package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// sliceTracker remembers the PersonaMembership writes this manager made, like
// the EndpointSlice controller's tracker: if the informer cache has not caught up
// with them yet, acting on it would re-add members who just exited or count an
// entry twice, so the reconcile waits for the cache instead.
type sliceTracker struct {
	mu sync.Mutex
	// written: slice name → generation we wrote (or 0 for a delete) per persona.
	written map[types.UID]map[string]int64
}

func newSliceTracker() *sliceTracker {
	return &sliceTracker{written: map[types.UID]map[string]int64{}}
}

// stale reports whether the cached slices miss a write we made.
func (t *sliceTracker) stale(persona types.UID, cached []v1alpha1.PersonaMembership) bool {
	return t.staleGenerations(persona, membershipGenerations(cached))
}

// staleGenerations is stale for any kind of slice: have maps the cached
// slices' names to their generations.
func (t *sliceTracker) staleGenerations(owner types.UID, have map[string]int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := t.written[owner]
	if len(want) == 0 {
		return false
	}
	for name, gen := range want {
		got, ok := have[name]
		switch {
		case gen == deletedGeneration && ok:
			return true // deleted, still cached
		case gen != deletedGeneration && (!ok || got < gen):
			return true // created or updated, not cached yet
		}
	}
	return false
}

const deletedGeneration = -1

func (t *sliceTracker) wrote(persona types.UID, name string, generation int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written[persona] == nil {
		t.written[persona] = map[string]int64{}
	}
	t.written[persona][name] = generation
}

// settle forgets writes the cache has caught up with, so the tracker stays small.
func (t *sliceTracker) settle(persona types.UID, cached []v1alpha1.PersonaMembership) {
	t.settleGenerations(persona, membershipGenerations(cached))
}

func (t *sliceTracker) settleGenerations(owner types.UID, have map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := t.written[owner]
	if len(want) == 0 {
		return
	}
	for name, gen := range want {
		got, ok := have[name]
		if (gen == deletedGeneration && !ok) || (gen != deletedGeneration && ok && got >= gen) {
			delete(want, name)
		}
	}
}

func (t *sliceTracker) forget(persona types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, persona)
}

func membershipGenerations(items []v1alpha1.PersonaMembership) map[string]int64 {
	out := make(map[string]int64, len(items))
	for _, it := range items {
		out[it.Name] = it.Generation
	}
	return out
}
