// Package tracker holds the controllers' in-memory state as small types, each
// keyed by the owning object and forgotten when it is deleted: the writes a
// manager made that its cache may not show yet (Writes, like the EndpointSlice
// controller's tracker), Jobs created but not cached yet (Names), recent
// launches for a rate limit (Window) and a per-object memo (Memo).
//
// Entries are keyed by namespace/name and carry the owner's UID: an object
// re-created under the same name starts afresh, and a reconcile that finds the
// object gone (it knows only the name) can Forget it.
package tracker

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Owner identifies the object a tracker's entry belongs to.
type Owner struct {
	types.NamespacedName
	UID types.UID
}

// owned is a map of per-owner entries that resets an entry whose UID changed.
type owned[E any] struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*entry[E]
}

type entry[E any] struct {
	uid types.UID
	e   E
}

// get returns the owner's entry, creating (or, for a new UID, resetting) it
// with fresh when create is set; nil otherwise. Callers hold mu.
func (o *owned[E]) get(owner Owner, create bool, fresh func() E) *E {
	if o.m == nil {
		o.m = map[types.NamespacedName]*entry[E]{}
	}
	en, ok := o.m[owner.NamespacedName]
	if ok && en.uid == owner.UID {
		return &en.e
	}
	if !create {
		return nil
	}
	en = &entry[E]{uid: owner.UID, e: fresh()}
	o.m[owner.NamespacedName] = en
	return &en.e
}

func (o *owned[E]) forget(name types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, name)
}

func (o *owned[E]) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m)
}
