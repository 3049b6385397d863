package tracker

import "k8s.io/apimachinery/pkg/types"

// Deleted is the generation Writes records for a deleted object.
const Deleted = -1

// Writes remembers the slice writes (PersonaMembership, PlaybookProgress) this
// manager made, like the EndpointSlice controller's tracker: if the informer
// cache has not caught up with them yet, acting on it would re-add members who
// just exited or launch a run twice, so the reconcile waits for the cache.
type Writes struct {
	o owned[map[string]int64] // slice name → generation written, or Deleted
}

// Wrote records a create or update that produced generation.
func (w *Writes) Wrote(owner Owner, name string, generation int64) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	(*w.o.get(owner, true, func() map[string]int64 { return map[string]int64{} }))[name] = generation
}

// Stale reports whether the cached slices (name → generation) miss a write
// we made.
func (w *Writes) Stale(owner Owner, cached map[string]int64) bool {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	want := w.o.get(owner, false, nil)
	if want == nil {
		return false
	}
	for name, gen := range *want {
		if !caughtUp(gen, cached, name) {
			return true
		}
	}
	return false
}

// Settle forgets the writes the cache has caught up with, so the tracker
// holds only what is in flight.
func (w *Writes) Settle(owner Owner, cached map[string]int64) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	want := w.o.get(owner, false, nil)
	if want == nil {
		return
	}
	for name, gen := range *want {
		if caughtUp(gen, cached, name) {
			delete(*want, name)
		}
	}
	if len(*want) == 0 {
		delete(w.o.m, owner.NamespacedName)
	}
}

func caughtUp(gen int64, cached map[string]int64, name string) bool {
	got, ok := cached[name]
	if gen == Deleted {
		return !ok
	}
	return ok && got >= gen
}

// Forget drops what is tracked for a deleted owner.
func (w *Writes) Forget(name types.NamespacedName) { w.o.forget(name) }

// Len is how many owners have writes in flight.
func (w *Writes) Len() int { return w.o.len() }
