// Package profile is the in-memory profile store shared by the controllers: per
// namespace, the latest good data of every DataSource, merged into one profile per
// user (joined to one account) with a deterministic precedence.
//
// The store never fetches anything: DataSources stay the system of record, and the
// DataSource controller rebuilds the store from them after a restart.
package profile

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// SourceData is the mapped result of one sync of one DataSource, ready to apply.
type SourceData struct {
	Name     string
	Priority int32
	Entity   v1alpha1.Entity

	UserDecls    []attr.Decl
	AccountDecls []attr.Decl
	SignalDecl   *attr.Decl

	// Users and Accounts hold packed rows (row.go). A Signal source's Users
	// hold one row per user whose only value is the user's list, with the sum
	// of its elements' hashes: an incremental sync replaces a user's list
	// whole, like any other row.
	Users    map[string]*row
	Accounts map[string]*row
	// userDict and accountDict code the rows' values (dict.go); the next full
	// sync's rows share them.
	userDict, accountDict *dictCols

	// Builtin marks a contribution of the operator itself (user.playbooks), not
	// of a DataSource: it adds attributes to profiles but makes none, is part of
	// every view whatever its source selection, and comes first in precedence.
	Builtin bool

	// Records is the number of records accepted into this data.
	Records int64
	// Digest identifies the content, whatever the record order.
	Digest string
	// sum is the digest as a number: the sum of every stored row's hash, so an
	// incremental sync can take a row's hash out and put its new one in.
	sum uint64
}

// Builder accumulates mapped records into SourceData.
type Builder struct {
	data    *SourceData
	digest  uint64
	scratch []byte
	prev    *SourceData // the source's stored data, whose unchanged rows are reused
	pack    packer
	// lists accumulates a Signal source's lists per user until Finish.
	lists map[string]signalList
}

// signalList is one user's list being built, and the sum of its elements'
// hashes.
type signalList struct {
	elems []any
	hash  uint64
}

// Reuse makes the builder keep prev's row for every record that has not
// changed (same key, same hash) instead of the freshly mapped one, which
// becomes garbage at once. A full re-sync then holds one copy of the
// source's rows plus its changes, not two full copies, until the store swaps
// the data: at a million users the second copy is most of the sync's peak
// memory. prev must be the source's data as the store holds it, and no delta
// may be applied to it while the builder runs (syncs of one DataSource are
// serialized).
func (b *Builder) Reuse(prev *SourceData) {
	if prev != nil && !prev.Builtin {
		b.prev = prev
		if sameShape(prev, b.data) && prev.userDict != nil {
			// Same columns: code values as the stored rows do.
			b.data.userDict, b.data.accountDict = prev.userDict, prev.accountDict
		}
	}
}

// NewBuilder starts the SourceData of one sync, with the mapper's declarations.
// sizeHint is the expected record count (the last sync's), so the maps are
// allocated once instead of growing through a large sync.
func NewBuilder(name string, priority int32, m *attr.Mapper, sizeHint int) *Builder {
	d := &SourceData{
		Name:         name,
		Priority:     priority,
		Entity:       m.Entity(),
		UserDecls:    m.UserDecls(),
		AccountDecls: m.AccountDecls(),
		Users:        map[string]*row{},
		Accounts:     map[string]*row{},
	}
	b := &Builder{data: d}
	switch d.Entity {
	case v1alpha1.EntityAccount:
		d.Accounts = make(map[string]*row, sizeHint)
	case v1alpha1.EntitySignal:
		b.lists = make(map[string]signalList, sizeHint/4)
	default:
		d.Users = make(map[string]*row, sizeHint)
	}
	if sd, ok := m.SignalDecl(); ok {
		d.SignalDecl = &sd
	}
	d.newDicts()
	return b
}

// Add records one mapped record. A later record for the same user or account
// replaces an earlier one (last wins), as a re-export of a table would.
//
// The digest is accumulated here, while the record is still in cache: hashing
// the finished maps afterwards costs a cache miss per value.
func (b *Builder) Add(m attr.Mapped) {
	b.data.Records++
	if m.User != nil {
		if old, ok := b.data.Users[m.User.Key]; ok {
			b.digest -= old.hash
		}
		b.data.Users[m.User.Key] = b.row('u', m.User)
	}
	if m.Account != nil {
		if old, ok := b.data.Accounts[m.Account.Key]; ok {
			b.digest -= old.hash
		}
		b.data.Accounts[m.Account.Key] = b.row('a', m.Account)
	}
	if m.SignalUser != "" {
		b.digest += b.addSignal(m)
	}
}

// newDicts gives the data empty dictionaries for its columns.
func (d *SourceData) newDicts() {
	users := len(d.UserDecls)
	if d.SignalDecl != nil {
		users = 1
	}
	d.userDict, d.accountDict = newDictCols(users), newDictCols(len(d.AccountDecls))
}

// addSignal appends a signal record's element to its user's list and
// returns the element's hash.
func (b *Builder) addSignal(m attr.Mapped) uint64 {
	h := b.hashRow('s', m.SignalUser, "", []any{m.Signal})
	l := b.lists[m.SignalUser]
	l.elems, l.hash = append(l.elems, m.Signal), l.hash+h
	b.lists[m.SignalUser] = l
	return h
}

// touchSignal makes a user's list part of the data even if no element is
// added to it (an incremental sync read only soft-deleted rows of the user:
// its list is now empty).
func (b *Builder) touchSignal(user string) {
	if _, ok := b.lists[user]; !ok {
		b.lists[user] = signalList{}
	}
}

// Finish returns the data with its digest: the sum of per-entry hashes, so it
// does not depend on record order (a query may return rows reordered).
func (b *Builder) Finish() *SourceData {
	d := b.data
	if b.lists != nil {
		d.Users = b.signalRows()
	}
	d.sum = b.digest
	d.Digest = digestString(b.digest)
	return d
}

// signalRows turns the lists built into one row per user (an empty list is
// not a row). A user whose list has the same hash as in the reused data keeps
// that row: the list just built becomes garbage at once.
func (b *Builder) signalRows() map[string]*row {
	rows := make(map[string]*row, len(b.lists))
	for uid, l := range b.lists {
		if len(l.elems) == 0 {
			continue
		}
		if b.prev != nil {
			if old, ok := b.prev.Users[uid]; ok && old.hash == l.hash {
				rows[uid] = old
				continue
			}
		}
		rows[uid] = b.pack.pack("", []any{l.elems}, b.data.userDict, l.hash)
	}
	b.lists = nil
	return rows
}

// UserValues are the values of the user's row in this data, in UserDecls
// order (nil: no row), decoded: for tests and tools, not for hot paths.
func (d *SourceData) UserValues(key string) []ref.Val { return d.Users[key].values() }

// AccountValues are the values of the account's row, in AccountDecls order.
func (d *SourceData) AccountValues(key string) []ref.Val { return d.Accounts[key].values() }

// SignalLen is the length of a Signal source's list for a user (0: none).
func (d *SourceData) SignalLen(user string) int {
	if d.SignalDecl == nil {
		return 0
	}
	r, ok := d.Users[user]
	if !ok {
		return 0
	}
	l, ok := r.val(0).(traits.Sizer)
	if !ok {
		return 0
	}
	return int(l.Size().(types.Int))
}

func digestString(sum uint64) string {
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], sum)
	return "xxh64:" + hex.EncodeToString(out[:])
}

// row hashes a mapped row into the digest and converts its values to CEL.
func (b *Builder) row(kind byte, r *attr.Row) *row {
	h := b.hashRow(kind, r.Key, r.AccountID, r.Values)
	b.digest += h
	if b.prev != nil {
		prev := b.prev.Users
		if kind == 'a' {
			prev = b.prev.Accounts
		}
		if old, ok := prev[r.Key]; ok && old.hash == h {
			return old
		}
	}
	return b.stored(kind, r, h)
}

// stored packs a hashed row (kind 'u' for a user, 'a' for an account).
func (b *Builder) stored(kind byte, r *attr.Row, h uint64) *row {
	dict := b.data.userDict
	if kind == 'a' {
		dict = b.data.accountDict
	}
	return b.pack.pack(r.AccountID, r.Values, dict, h)
}

func (b *Builder) hashRow(kind byte, key, account string, values []any) uint64 {
	buf := append(b.scratch[:0], kind)
	buf = appendString(buf, key)
	buf = appendString(buf, account)
	for _, v := range values {
		buf = appendValue(buf, v)
	}
	b.scratch = buf
	return xxhash.Sum64(buf)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// appendValue encodes a typed value unambiguously (type tag + payload).
func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, 0)
	case string:
		return appendString(append(buf, 1), x)
	case int64:
		return binary.AppendVarint(append(buf, 2), x)
	case float64:
		return binary.BigEndian.AppendUint64(append(buf, 3), math.Float64bits(x))
	case bool:
		if x {
			return append(buf, 4, 1)
		}
		return append(buf, 4, 0)
	case time.Time:
		return binary.AppendVarint(append(buf, 5), x.UnixNano())
	case time.Duration:
		return binary.AppendVarint(append(buf, 6), int64(x))
	case []any:
		buf = binary.AppendUvarint(append(buf, 7), uint64(len(x)))
		for _, e := range x {
			buf = appendValue(buf, e)
		}
		return buf
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf = binary.AppendUvarint(append(buf, 8), uint64(len(keys)))
		for _, k := range keys {
			buf = appendValue(appendString(buf, k), x[k])
		}
		return buf
	case uint64:
		return binary.AppendUvarint(append(buf, 9), x)
	case []byte:
		return appendString(append(buf, 10), string(x))
	default:
		return append(buf, 255)
	}
}

// Declared is the declaration-only SourceData of a DataSource: the attributes
// its spec declares, without data. Admission and the Persona controller type-
// check rules against the DeclaredSchema of these before (or without) any
// data loading. The error is the spec's attribute mapping not compiling.
func Declared(ds *v1alpha1.DataSource) (*SourceData, error) {
	m, err := attr.NewMapper(&ds.Spec)
	if err != nil {
		return nil, err
	}
	d := &SourceData{Name: ds.Name, Priority: ds.Spec.Priority, Entity: m.Entity(),
		UserDecls: m.UserDecls(), AccountDecls: m.AccountDecls()}
	if sd, ok := m.SignalDecl(); ok {
		d.SignalDecl = &sd
	}
	return d, nil
}
