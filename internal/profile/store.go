package profile

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// Store holds one Namespace per Kubernetes namespace: a namespace is a team's
// boundary and a Persona only sees the DataSources of its own.
type Store struct {
	mu         sync.Mutex
	namespaces map[string]*Namespace
	feeds      map[*Feed]struct{} // subscribers to built-in changes (feed.go)
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{namespaces: map[string]*Namespace{}, feeds: map[*Feed]struct{}{}}
}

// Namespace returns the namespace's profiles, creating it empty.
func (s *Store) Namespace(name string) *Namespace {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.namespaces[name]
	if !ok {
		n = newNamespace()
		n.notify = func() { s.changed(name) }
		s.namespaces[name] = n
	}
	return n
}

// Namespace is the merged profiles of one namespace. Readers see a consistent
// snapshot: Apply and Remove take the write lock, Read the read lock.
type Namespace struct {
	mu       sync.RWMutex
	slots    map[string]int // source name → slot in entry.rows
	sources  []*SourceData  // by slot; nil = free slot
	users    map[string]*entry
	accounts map[string]*entry
	// userPos hands out the users' positions in snapshots.
	userPos positions
	plan    *plan
	gen     uint64
	// journal records the keys each generation changed (journal.go).
	journal journal

	// playbooks is the published run state per playbook and user, from which
	// the built-in PlaybooksSource is rebuilt (playbookstate.go). notify tells the
	// store's feeds that a built-in contribution changed.
	playbooks map[string]map[string]PlaybookState
	notify    func()

	// views caches, per source selection read since the last change, its plan
	// and dense snapshot (see snapshot.go). Apply and Remove clear it.
	viewMu sync.Mutex
	views  map[string]*viewCache
}

// entry holds, per source slot, that source's row for one user or account. A
// Signal source's row holds its list as the only value. The first slots are
// inline: most namespaces have a few sources, and one allocation per profile
// instead of two matters at a million profiles.
type entry struct {
	inline [inlineSlots]*row
	more   *[]*row // slots from inlineSlots on (a pointer: the entry fits 48 bytes)
	pos    int32   // a user's position in snapshots (positions.go); -1 for an account
}

const inlineSlots = 3

func (e *entry) set(slot int, r *row) {
	if slot < inlineSlots {
		e.inline[slot] = r
		return
	}
	i := slot - inlineSlots
	if e.more == nil {
		e.more = new([]*row)
	}
	for len(*e.more) <= i {
		*e.more = append(*e.more, nil)
	}
	(*e.more)[i] = r
}

func (e *entry) row(slot int) *row {
	if slot < inlineSlots {
		return e.inline[slot]
	}
	if i := slot - inlineSlots; e.more != nil && i < len(*e.more) {
		return (*e.more)[i]
	}
	return nil
}

func (e *entry) empty() bool {
	for _, r := range e.inline {
		if r != nil {
			return false
		}
	}
	if e.more == nil {
		return true
	}
	for _, r := range *e.more {
		if r != nil {
			return false
		}
	}
	return true
}

func newNamespace() *Namespace {
	n := &Namespace{slots: map[string]int{}, users: map[string]*entry{}, accounts: map[string]*entry{}, views: map[string]*viewCache{},
		playbooks: map[string]map[string]PlaybookState{}, notify: func() {}}
	n.plan = buildPlan(nil, nil)
	return n
}

// Apply replaces everything a source contributed with d, atomically for readers.
// It returns the namespace's new generation.
func (n *Namespace) Apply(d *SourceData) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.apply(d)
}

// apply is Apply with n.mu held for writing.
func (n *Namespace) apply(d *SourceData) uint64 {
	slot, ok := n.slots[d.Name]
	if ok && n.sources[slot] == d {
		return n.gen // the same data again
	}
	if !ok {
		slot = n.freeSlot()
		n.slots[d.Name] = slot
	}
	// A source that is new or declares other attributes changes how every
	// profile merges; otherwise only the rows that differ changed.
	all := !ok || !sameShape(n.sources[slot], d)
	n.sources[slot] = d
	users := d.Users
	// The first load of a namespace sizes its maps once.
	if len(n.users) == 0 {
		n.users = make(map[string]*entry, len(users))
	}
	if len(n.accounts) == 0 {
		n.accounts = make(map[string]*entry, len(d.Accounts))
	}
	changedUsers := replaceSlot(n.users, &n.userPos, slot, users, !all)
	changedAccounts := replaceSlot(n.accounts, nil, slot, d.Accounts, !all)
	n.plan = buildPlan(n.sources, nil)
	n.changed(all, changedUsers, changedAccounts)
	return n.gen
}

// changed moves the generation after a change to the profiles and records
// what it touched; the caller holds n.mu for writing.
func (n *Namespace) changed(all bool, users, accounts []string) {
	n.invalidate(all)
	n.gen++
	n.journal.record(n.gen, all, users, accounts, n.userPos.drain())
}

// sameShape reports whether two datas of one source merge the same way:
// same entity, precedence and declarations.
func sameShape(a, b *SourceData) bool {
	return a != nil && b != nil && a.Entity == b.Entity && a.Priority == b.Priority && a.Builtin == b.Builtin &&
		(a.SignalDecl == nil) == (b.SignalDecl == nil) && (a.SignalDecl == nil || *a.SignalDecl == *b.SignalDecl) &&
		slices.Equal(a.UserDecls, b.UserDecls) && slices.Equal(a.AccountDecls, b.AccountDecls)
}

// Remove drops a source's data (the DataSource was deleted).
func (n *Namespace) Remove(name string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remove(name)
}

// remove is Remove with n.mu held for writing.
func (n *Namespace) remove(name string) uint64 {
	slot, ok := n.slots[name]
	if !ok {
		return n.gen
	}
	delete(n.slots, name)
	n.sources[slot] = nil
	replaceSlot(n.users, &n.userPos, slot, nil, false)
	replaceSlot(n.accounts, nil, slot, nil, false)
	n.plan = buildPlan(n.sources, nil)
	n.changed(true, nil, nil)
	return n.gen
}

// Loaded reports whether a source's data has been applied, and its digest.
func (n *Namespace) Loaded(name string) (digest string, records int64, ok bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	slot, ok := n.slots[name]
	if !ok {
		return "", 0, false
	}
	return n.sources[slot].Digest, n.sources[slot].Records, true
}

// Source returns the source's data as the store holds it (nil: not loaded),
// for Builder.Reuse. It is read-only: the store swaps it whole on Apply and
// changes it only through ApplyDelta.
func (n *Namespace) Source(name string) *SourceData {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if slot, ok := n.slots[name]; ok {
		return n.sources[slot]
	}
	return nil
}

// Generation increases with every Apply and Remove.
func (n *Namespace) Generation() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.gen
}

// Conflicts lists, per source name, attributes it declares that a source of
// higher precedence declares with another type; those values are not used.
func (n *Namespace) Conflicts() map[string][]string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := map[string][]string{}
	for k, v := range n.plan.conflicts {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (n *Namespace) freeSlot() int {
	for i, s := range n.sources {
		if s == nil {
			return i
		}
	}
	n.sources = append(n.sources, nil)
	return len(n.sources) - 1
}

// replaceSlot makes rows the slot's only contents: O(entries + rows), so a sync
// costs in proportion to the namespace, with no per-source index to keep. With
// track, it returns the keys whose row in the slot changed. pos hands out the
// positions of new entries (nil for accounts).
func replaceSlot(entries map[string]*entry, pos *positions, slot int, rows map[string]*row, track bool) (changed []string) {
	for key, e := range entries {
		if e.row(slot) == nil {
			continue
		}
		if _, keep := rows[key]; keep {
			continue
		}
		e.set(slot, nil)
		if track {
			changed = append(changed, key)
		}
		if e.empty() {
			delete(entries, key)
			pos.put(e.pos)
		}
	}
	for key, r := range rows {
		e, ok := entries[key]
		if !ok {
			e = &entry{pos: pos.take()}
			entries[key] = e
		}
		if track && !sameRow(e.row(slot), r) {
			changed = append(changed, key)
		}
		e.set(slot, r)
	}
	return changed
}

// cand is where an attribute's value may come from: a source slot and column.
type cand struct{ slot, col int }

// plan resolves attribute names to sources in precedence order.
type plan struct {
	userAttrs    map[string][]cand
	accountAttrs map[string][]cand
	userTypes    map[string]attr.Type
	accountTypes map[string]attr.Type
	accountIDs   []int // User source slots, in precedence order, for user.accountId
	userSlots    []int // User source slots: a user with a row in one is a profile
	conflicts    map[string][]string
}

// precedence orders sources: built-in contributions first (whatever the
// selection: a persona limited to some DataSources still sees playbook state),
// then higher priority, then name.
func precedence(sources []*SourceData, only map[string]bool) []int {
	var slots []int
	for i, s := range sources {
		if s != nil && (only == nil || only[s.Name] || s.Builtin) {
			slots = append(slots, i)
		}
	}
	sort.Slice(slots, func(a, b int) bool {
		sa, sb := sources[slots[a]], sources[slots[b]]
		if sa.Builtin != sb.Builtin {
			return sa.Builtin
		}
		if sa.Priority != sb.Priority {
			return sa.Priority > sb.Priority
		}
		return sa.Name < sb.Name
	})
	return slots
}

// buildPlan resolves every attribute of the given sources (only: a subset by
// name, nil for all). The first source in precedence order that declares an
// attribute fixes its type; a later declaration with another type is a conflict
// and is left out.
func buildPlan(sources []*SourceData, only map[string]bool) *plan {
	p := &plan{
		userAttrs: map[string][]cand{}, accountAttrs: map[string][]cand{},
		userTypes: map[string]attr.Type{}, accountTypes: map[string]attr.Type{},
		conflicts: map[string][]string{},
	}
	for _, slot := range precedence(sources, only) {
		s := sources[slot]
		switch {
		case s.Builtin:
			// Attributes only: a user with playbook state but no User row is
			// not a profile.
			p.add(s.Name, p.userAttrs, p.userTypes, slot, s.UserDecls, "user")
		case s.SignalDecl != nil:
			p.add(s.Name, p.userAttrs, p.userTypes, slot, []attr.Decl{*s.SignalDecl}, "user")
		case s.Entity == v1alpha1.EntityAccount:
			p.add(s.Name, p.accountAttrs, p.accountTypes, slot, s.AccountDecls, "account")
		default:
			p.userSlots = append(p.userSlots, slot)
			p.accountIDs = append(p.accountIDs, slot)
			p.add(s.Name, p.userAttrs, p.userTypes, slot, s.UserDecls, "user")
			p.add(s.Name, p.accountAttrs, p.accountTypes, slot, s.AccountDecls, "account")
		}
	}
	return p
}

func (p *plan) add(source string, attrs map[string][]cand, typeOf map[string]attr.Type, slot int, decls []attr.Decl, entity string) {
	for col, d := range decls {
		if entity == "user" && d.Name == attr.PlaybooksAttr && source != PlaybooksSource {
			// The mapper rejects the name already; a SourceData built some
			// other way must not merge into the built-in either.
			p.conflicts[source] = append(p.conflicts[source], "user.playbooks is built in (playbook run state) and cannot be declared")
			continue
		}
		if t, ok := typeOf[d.Name]; ok && t != d.Type {
			p.conflicts[source] = append(p.conflicts[source],
				fmt.Sprintf("%s.%s is %s here but %s in a source of higher precedence", entity, d.Name, d.Type, t))
			continue
		}
		typeOf[d.Name] = d.Type
		attrs[d.Name] = append(attrs[d.Name], cand{slot: slot, col: col})
	}
}
