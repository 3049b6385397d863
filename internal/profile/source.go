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
func NewBuilder(name string, priority int32, m *attr.Mapper) *Builder {
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
	if sd, ok := m.SignalDecl(); ok {
		d.SignalDecl = &sd
	}
	return &Builder{data: d}
}

// Add records one mapped record. A later record for the same user or account
// replaces an earlier one (last wins), as a re-export of a table would.
func (b *Builder) Add(m attr.Mapped) {
	b.data.Records++
	if m.User != nil {
		b.data.Users[m.User.Key] = m.User
	}
	if m.Account != nil {
		b.data.Accounts[m.Account.Key] = m.Account
	}
	if m.SignalUser != "" {
		b.data.Signals[m.SignalUser] = append(b.data.Signals[m.SignalUser], m.Signal)
	}
}

// Finish computes the digest and returns the data.
func (b *Builder) Finish() *SourceData {
	d := b.data
	// Sum of per-entry hashes: independent of record and map order, so an
	// unchanged source keeps its digest even when a query returns rows reordered.
	var sum uint64
	for k, r := range d.Users {
		sum += b.hashRow('u', k, r.AccountID, r.Values)
	}
	for k, r := range d.Accounts {
		sum += b.hashRow('a', k, "", r.Values)
	}
	for k, list := range d.Signals {
		sum += b.hashRow('s', k, "", list)
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], sum)
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
