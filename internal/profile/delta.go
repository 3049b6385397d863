package profile

import (
	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// Delta is the change one incremental sync makes to a source: rows to upsert
// and keys to delete, per entity. Within a delta the last operation on a key
// wins, as in a full sync.
//
// A Signal source's delta holds whole lists: every current row of each user
// it touches (the sync reads them all), replacing the user's list; a user
// whose rows are all gone (soft-deleted) loses it.
type Delta struct {
	Name     string
	Entity   v1alpha1.Entity
	users    map[string]deltaOp
	accounts map[string]deltaOp
}

// deltaOp is an upsert (del false) or a delete of one key.
type deltaOp struct {
	row *row
	del bool
}

// DeltaBuilder accumulates mapped records into a Delta.
type DeltaBuilder struct {
	d *Delta
	b Builder // for its row hashing and CEL conversion, shared with full syncs
}

// NewDeltaBuilder starts the Delta of one incremental sync of a source.
func NewDeltaBuilder(name string, m *attr.Mapper) *DeltaBuilder {
	db := &DeltaBuilder{d: &Delta{
		Name: name, Entity: m.Entity(), users: map[string]deltaOp{}, accounts: map[string]deltaOp{},
	}}
	if db.d.Entity == v1alpha1.EntitySignal {
		db.b.lists = map[string]signalList{}
	}
	// The delta's rows code their values with dictionaries of their own: the
	// stored rows' are written only by full syncs (dict.go).
	db.b.data = &SourceData{UserDecls: m.UserDecls(), AccountDecls: m.AccountDecls()}
	if sd, ok := m.SignalDecl(); ok {
		db.b.data.SignalDecl = &sd
	}
	db.b.data.newDicts()
	return db
}

// Upsert records a changed (or new) record: its user and/or account row
// replaces the stored one. A signal record adds an element to its user's new
// list.
func (db *DeltaBuilder) Upsert(m attr.Mapped) {
	if m.SignalUser != "" {
		db.b.addSignal(m)
		return
	}
	if m.User != nil {
		h := db.b.hashRow('u', m.User.Key, m.User.AccountID, m.User.Values)
		db.d.users[m.User.Key] = deltaOp{row: db.b.stored('u', m.User, h)}
	}
	if m.Account != nil {
		h := db.b.hashRow('a', m.Account.Key, m.Account.AccountID, m.Account.Values)
		db.d.accounts[m.Account.Key] = deltaOp{row: db.b.stored('a', m.Account, h)}
	}
}

// Delete records a deleted record: the keys it maps to leave the source. For
// a User source the user row goes; an Account source's row goes.
func (db *DeltaBuilder) Delete(m attr.Mapped) {
	switch {
	case m.SignalUser != "":
		db.b.touchSignal(m.SignalUser)
	case db.d.Entity == v1alpha1.EntityAccount && m.Account != nil:
		db.d.accounts[m.Account.Key] = deltaOp{del: true}
	case m.User != nil:
		db.d.users[m.User.Key] = deltaOp{del: true}
	}
}

// Finish returns the delta.
func (db *DeltaBuilder) Finish() *Delta {
	if lists := db.b.lists; lists != nil {
		for uid := range lists {
			db.d.users[uid] = deltaOp{del: true} // no element left: signalRows makes no row
		}
		for uid, r := range db.b.signalRows() {
			db.d.users[uid] = deltaOp{row: r}
		}
	}
	return db.d
}

// Len is the number of keys the delta touches.
func (d *Delta) Len() int { return len(d.users) + len(d.accounts) }

// Deletes is the number of deletes in the delta (whether or not the keys are
// stored): what the circuit breaker counts against the baseline.
func (d *Delta) Deletes() int64 {
	var n int64
	for _, op := range d.users {
		if op.del {
			n++
		}
	}
	for _, op := range d.accounts {
		if op.del {
			n++
		}
	}
	return n
}

// DeltaResult is what applying a delta changed.
type DeltaResult struct {
	// Applied is false when the source holds no data yet (or is a Signal
	// source): the caller must do a full sync instead.
	Applied bool
	// Upserted and Deleted count the keys whose stored row changed or left;
	// rows re-read unchanged (the overlap) count in neither.
	Upserted, Deleted int64
	// Generation is the namespace's generation afterwards; it only moves when
	// something changed, so personas are not re-evaluated for nothing.
	Generation uint64
	// Records and Digest describe the source's data afterwards, as a full sync
	// of the same rows would (one record per key).
	Records int64
	Digest  string
}

// ApplyDelta applies an incremental sync to the source's stored data in
// place: no second copy of the source is built, and the cost is in proportion
// to the delta, not to the source or the namespace.
func (n *Namespace) ApplyDelta(d *Delta) DeltaResult {
	n.mu.Lock()
	defer n.mu.Unlock()
	slot, ok := n.slots[d.Name]
	if !ok || n.sources[slot].Builtin || (n.sources[slot].SignalDecl != nil) != (d.Entity == v1alpha1.EntitySignal) {
		return DeltaResult{Generation: n.gen}
	}
	src := n.sources[slot]
	res := DeltaResult{Applied: true}
	// A full sync's Records counts records, duplicates included; a source
	// that takes deltas is counted by key from now on, as ApplyDelta keeps it
	// (a Signal source by element: its records are the lists' elements).
	signal := src.SignalDecl != nil
	if !signal {
		src.Records = keyCount(src)
	}
	users := applyOps(src, &src.Users, n.users, &n.userPos, slot, d.users, &res)
	accounts := applyOps(src, &src.Accounts, n.accounts, nil, slot, d.accounts, &res)
	if !signal {
		src.Records = keyCount(src)
	}
	src.Digest = digestString(src.sum)
	if res.Upserted+res.Deleted > 0 {
		n.changed(false, users, accounts)
	}
	res.Generation, res.Records, res.Digest = n.gen, src.Records, src.Digest
	return res
}

// applyOps applies one entity's operations to the source's rows and to the
// namespace's entries for the source's slot, and returns the keys it changed.
func applyOps(src *SourceData, rows *map[string]*row, entries map[string]*entry, pos *positions, slot int,
	ops map[string]deltaOp, res *DeltaResult) (changed []string) {
	if len(ops) == 0 {
		return nil
	}
	if *rows == nil {
		*rows = map[string]*row{}
	}
	for key, op := range ops {
		old, had := (*rows)[key]
		if op.del {
			if !had {
				continue
			}
			src.Records -= int64(src.SignalLen(key))
			src.sum -= old.hash
			delete(*rows, key)
			if e := entries[key]; e != nil {
				e.set(slot, nil)
				if e.empty() {
					delete(entries, key)
					pos.put(e.pos)
				}
			}
			res.Deleted++
			changed = append(changed, key)
			continue
		}
		if had && old.hash == op.row.hash {
			continue // read again through the overlap, unchanged
		}
		if had {
			src.Records -= int64(src.SignalLen(key))
			src.sum -= old.hash
		}
		src.sum += op.row.hash
		(*rows)[key] = op.row
		src.Records += int64(src.SignalLen(key))
		e, ok := entries[key]
		if !ok {
			e = &entry{pos: pos.take()}
			entries[key] = e
		}
		e.set(slot, op.row)
		res.Upserted++
		changed = append(changed, key)
	}
	return changed
}

// keyCount is a source's record count by key: its accounts for an Account
// source, its users otherwise (a User source's account rows come with them).
func keyCount(src *SourceData) int64 {
	if src.Entity == v1alpha1.EntityAccount {
		return int64(len(src.Accounts))
	}
	return int64(len(src.Users))
}

// Diff returns the delta that turns prev into next, two full syncs of the same
// source, so a full sync of a source whose rows mostly did not change (an
// Inline or ConfigMap source edited by hand) touches only the changed rows in
// the store. It returns nil when the two cannot be diffed: a first load, a
// built-in source, or declarations, entity or priority that differ (the merge
// plan changes: the data must be applied whole).
func Diff(prev, next *SourceData) *Delta {
	if prev == nil || next == nil || prev.Name != next.Name || prev.Builtin || !sameShape(prev, next) {
		return nil
	}
	return &Delta{Name: next.Name, Entity: next.Entity,
		users: diffRows(prev.Users, next.Users), accounts: diffRows(prev.Accounts, next.Accounts)}
}

func diffRows(prev, next map[string]*row) map[string]deltaOp {
	ops := map[string]deltaOp{}
	for key, r := range next {
		if old, ok := prev[key]; !ok || old.hash != r.hash {
			ops[key] = deltaOp{row: r}
		}
	}
	for key := range prev {
		if _, ok := next[key]; !ok {
			ops[key] = deltaOp{del: true}
		}
	}
	return ops
}
