package tracker

import "k8s.io/apimachinery/pkg/types"

// Memo keeps one value per owner, valid for one spec generation and one key
// (such as the schema a rule was compiled against): the Persona reconciler's
// compiled rules.
type Memo[V any] struct {
	o owned[memoEntry[V]]
}

type memoEntry[V any] struct {
	generation int64
	key        string
	value      V
	set        bool
}

// Get returns the value stored for the owner at this generation and key.
func (m *Memo[V]) Get(owner Owner, generation int64, key string) (V, bool) {
	m.o.mu.Lock()
	defer m.o.mu.Unlock()
	e := m.o.get(owner, false, nil)
	if e == nil || !e.set || e.generation != generation || e.key != key {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Latest returns the owner's value for this generation, whatever its key.
func (m *Memo[V]) Latest(owner Owner, generation int64) (V, bool) {
	m.o.mu.Lock()
	defer m.o.mu.Unlock()
	e := m.o.get(owner, false, nil)
	if e == nil || !e.set || e.generation != generation {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put stores the owner's value for a generation and key, replacing any other.
func (m *Memo[V]) Put(owner Owner, generation int64, key string, value V) {
	m.o.mu.Lock()
	defer m.o.mu.Unlock()
	*m.o.get(owner, true, func() memoEntry[V] { return memoEntry[V]{} }) = memoEntry[V]{
		generation: generation, key: key, value: value, set: true,
	}
}

// Forget drops the value of a deleted owner.
func (m *Memo[V]) Forget(name types.NamespacedName) { m.o.forget(name) }

// Len is how many owners have a value.
func (m *Memo[V]) Len() int { return m.o.len() }
