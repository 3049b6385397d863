package tracker

import "k8s.io/apimachinery/pkg/types"

// Names remembers objects this process created that its cache may not show
// yet (a Playbook's Jobs): re-creating them would only cost an AlreadyExists
// round trip.
type Names struct {
	o owned[map[string]bool]
}

// Add records a created object.
func (n *Names) Add(owner Owner, name string) {
	n.o.mu.Lock()
	defer n.o.mu.Unlock()
	(*n.o.get(owner, true, func() map[string]bool { return map[string]bool{} }))[name] = true
}

// Pending returns the recorded names the cache does not show yet (cached
// reports whether it does), and forgets the others.
func (n *Names) Pending(owner Owner, cached func(name string) bool) map[string]bool {
	n.o.mu.Lock()
	defer n.o.mu.Unlock()
	names := n.o.get(owner, false, nil)
	if names == nil {
		return nil
	}
	out := map[string]bool{}
	for name := range *names {
		if cached(name) {
			delete(*names, name)
		} else {
			out[name] = true
		}
	}
	if len(*names) == 0 {
		delete(n.o.m, owner.NamespacedName)
	}
	return out
}

// Forget drops what is tracked for a deleted owner.
func (n *Names) Forget(name types.NamespacedName) { n.o.forget(name) }

// Len is how many owners have names tracked.
func (n *Names) Len() int { return n.o.len() }
