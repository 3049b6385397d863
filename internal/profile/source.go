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

	Users    map[string]*attr.Row
	Accounts map[string]*attr.Row
	Signals  map[string][]any

	// Records is the number of records accepted into this data.
	Records int64
	// Digest identifies the content, whatever the record order.
	Digest string
}

// Builder accumulates mapped records into SourceData.
type Builder struct {
	data    *SourceData
	digest  uint64
	scratch []byte
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
		Users:        map[string]*attr.Row{},
		Accounts:     map[string]*attr.Row{},
		Signals:      map[string][]any{},
	}
	switch {
	case d.Entity == v1alpha1.EntityAccount:
		d.Accounts = make(map[string]*attr.Row, sizeHint)
	case d.Entity == v1alpha1.EntitySignal:
		d.Signals = make(map[string][]any, sizeHint/4)
	default:
		d.Users = make(map[string]*attr.Row, sizeHint)
	}
	if sd, ok := m.SignalDecl(); ok {
		d.SignalDecl = &sd
	}
	return &Builder{data: d}
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
			b.digest -= b.hashRow('u', old.Key, old.AccountID, old.Values)
		}
		b.data.Users[m.User.Key] = m.User
		b.digest += b.hashRow('u', m.User.Key, m.User.AccountID, m.User.Values)
	}
	if m.Account != nil {
		if old, ok := b.data.Accounts[m.Account.Key]; ok {
			b.digest -= b.hashRow('a', old.Key, "", old.Values)
		}
		b.data.Accounts[m.Account.Key] = m.Account
		b.digest += b.hashRow('a', m.Account.Key, "", m.Account.Values)
	}
	if m.SignalUser != "" {
		b.data.Signals[m.SignalUser] = append(b.data.Signals[m.SignalUser], m.Signal)
		b.digest += b.hashRow('s', m.SignalUser, "", []any{m.Signal})
	}
}

// Finish returns the data with its digest: the sum of per-entry hashes, so it
// does not depend on record order (a query may return rows reordered).
func (b *Builder) Finish() *SourceData {
	d := b.data
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], b.digest)
	d.Digest = "xxh64:" + hex.EncodeToString(out[:])
	return d
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
