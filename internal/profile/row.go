package profile

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// A row is one source's record of one user or account as the store keeps it:
// the account id and the values packed into one string, a handful of bytes
// per value, instead of a slice of boxed CEL values. At a million profiles the
// boxed form cost about 450 bytes and fifteen pointers per row (the row, its
// slice, a box per value, the driver's strings); the packed form costs the
// struct and one pointer-free allocation, which the garbage collector neither
// scans nor chases. Values are decoded to CEL when read: strings as
// substrings of the packed data, values held in a column's dictionary (dict.go)
// as the shared boxed value.
//
// A row never changes once built: snapshots and detached views read it without
// the namespace's lock.
type row struct {
	// data is the account id (alen bytes), then n offsets of w bytes (w is 2,
	// or 4 when wide) into the value area, then the value area: one tag byte
	// per value and its payload.
	data string
	// refs are values kept as CEL values (maps, values of other types), and
	// every value of a plain row; nil for most rows (a pointer: the struct
	// then fits a 48-byte allocation).
	refs *[]ref.Val
	// dict decodes the dictionary codes in data.
	dict *dictCols
	// hash is the row's contribution to its source's digest: equal hashes are
	// equal rows (Builder.Reuse and deltas rely on it already). 0: not hashed
	// (built-in rows), compared value by value.
	hash uint64
	alen uint32
	n    uint16
	mode uint8
}

// Row modes.
const (
	narrow uint8 = iota // 2-byte offsets
	wide                // 4-byte offsets: a value area over 64 KiB
	plain               // no packed values: refs holds them all
)

// Value tags in the packed data.
const (
	tNil byte = iota
	tCode
	tStr
	tInt
	tUint
	tDouble
	tTrue
	tFalse
	tTime
	tDur
	tList
	tRef
)

// packer builds rows, reusing its scratch buffers from row to row.
type packer struct {
	vals []byte
	offs []uint32
}

// pack builds the row of mapped values (Go values from attr, or CEL values),
// coding strings and lists of strings through the columns' dictionaries.
func (p *packer) pack(account string, values []any, dict *dictCols, hash uint64) *row {
	if len(values) > math.MaxUint16 || len(account) > math.MaxUint32/2 {
		return plainRow(account, values, hash)
	}
	p.vals, p.offs = p.vals[:0], p.offs[:0]
	var refs []ref.Val
	for i, v := range values {
		p.offs = append(p.offs, uint32(len(p.vals)))
		p.vals, refs = packValue(p.vals, refs, v, dict.col(i))
	}
	r := &row{dict: dict, hash: hash, alen: uint32(len(account)), n: uint16(len(values))}
	if refs != nil {
		r.refs = &refs
	}
	w := 2
	if len(p.vals) > math.MaxUint16 {
		r.mode, w = wide, 4
	}
	buf := make([]byte, 0, len(account)+w*len(p.offs)+len(p.vals))
	buf = append(buf, account...)
	for _, o := range p.offs {
		if r.mode == wide {
			buf = binary.LittleEndian.AppendUint32(buf, o)
		} else {
			buf = binary.LittleEndian.AppendUint16(buf, uint16(o))
		}
	}
	buf = append(buf, p.vals...)
	if len(buf) > 0 {
		// The bytes are never written again: the string shares them.
		r.data = unsafe.String(&buf[0], len(buf))
	}
	return r
}

// plainRow keeps every value as a CEL value (rows too large to pack, and the
// built-in rows, whose values are CEL maps).
func plainRow(account string, values []any, hash uint64) *row {
	refs := make([]ref.Val, len(values))
	for i, v := range values {
		refs[i] = toRef(v)
	}
	return &row{data: account, refs: &refs, hash: hash, alen: uint32(len(account)), mode: plain}
}

// account is the user row's account id ("" = none).
func (r *row) account() string { return r.data[:r.alen] }

// len is the number of values.
func (r *row) len() int {
	if r.mode == plain {
		return len(*r.refs)
	}
	return int(r.n)
}

// val returns the i-th value as a CEL value, nil when the row has none.
func (r *row) val(i int) ref.Val {
	if r == nil || i < 0 || i >= r.len() {
		return nil
	}
	if r.mode == plain {
		return (*r.refs)[i]
	}
	v, _ := r.decode(r.valueAt(i), r.dict.col(i))
	return v
}

// values decodes every value (nil for a nil row).
func (r *row) values() []ref.Val {
	if r == nil {
		return nil
	}
	out := make([]ref.Val, r.len())
	for i := range out {
		out[i] = r.val(i)
	}
	return out
}

// valueAt is where the i-th value starts in data.
func (r *row) valueAt(i int) int {
	at := int(r.alen)
	if r.mode == wide {
		start := at + 4*int(r.n)
		return start + int(binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(r.data[at+4*i:]), 4)))
	}
	start := at + 2*int(r.n)
	return start + int(uint16(r.data[at+2*i])|uint16(r.data[at+2*i+1])<<8)
}

// packValue encodes v (a Go value as attr maps it, or a CEL value) at the
// end of buf; a value that is not packed goes to refs.
func packValue(buf []byte, refs []ref.Val, v any, col *dictCol) ([]byte, []ref.Val) {
	switch x := v.(type) {
	case nil:
		return append(buf, tNil), refs
	case string:
		if code, ok := col.codeString(x); ok {
			return binary.AppendUvarint(append(buf, tCode), uint64(code)), refs
		}
		return appendStr(append(buf, tStr), x), refs
	case types.String:
		return packValue(buf, refs, string(x), col)
	case []any:
		if code, ok := col.codeList(x); ok {
			return binary.AppendUvarint(append(buf, tCode), uint64(code)), refs
		}
		if out, ok := appendList(buf, x); ok {
			return out, refs
		}
	default:
		if out, ok := appendScalar(buf, v); ok {
			return out, refs
		}
	}
	refs = append(refs, toRef(v))
	return binary.AppendUvarint(append(buf, tRef), uint64(len(refs)-1)), refs
}

// appendList encodes a list whose elements are scalars; false for any other.
func appendList(buf []byte, l []any) ([]byte, bool) {
	out := binary.AppendUvarint(append(buf, tList), uint64(len(l)))
	for _, e := range l {
		var ok bool
		if s, isStr := e.(string); isStr {
			out = appendStr(append(out, tStr), s)
			continue
		}
		if out, ok = appendScalar(out, e); !ok {
			return buf, false
		}
	}
	return out, true
}

// appendScalar encodes the types with a fixed encoding; false for others.
func appendScalar(buf []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(buf, tNil), true
	case int64:
		return binary.AppendVarint(append(buf, tInt), x), true
	case types.Int:
		return binary.AppendVarint(append(buf, tInt), int64(x)), true
	case uint64:
		return binary.AppendUvarint(append(buf, tUint), x), true
	case types.Uint:
		return binary.AppendUvarint(append(buf, tUint), uint64(x)), true
	case float64:
		return binary.LittleEndian.AppendUint64(append(buf, tDouble), math.Float64bits(x)), true
	case types.Double:
		return binary.LittleEndian.AppendUint64(append(buf, tDouble), math.Float64bits(float64(x))), true
	case bool:
		return appendBool(buf, x), true
	case types.Bool:
		return appendBool(buf, bool(x)), true
	case time.Time:
		return appendTime(buf, x)
	case types.Timestamp:
		return appendTime(buf, x.Time)
	case time.Duration:
		return binary.AppendVarint(append(buf, tDur), int64(x)), true
	case types.Duration:
		return binary.AppendVarint(append(buf, tDur), int64(x.Duration)), true
	}
	return buf, false
}

func appendBool(buf []byte, b bool) []byte {
	if b {
		return append(buf, tTrue)
	}
	return append(buf, tFalse)
}

// appendTime encodes a UTC instant (attr maps every timestamp to UTC); a time
// in another location is kept as a CEL value, so that it reads back exactly.
func appendTime(buf []byte, t time.Time) ([]byte, bool) {
	if t.Location() != time.UTC {
		return buf, false
	}
	buf = binary.AppendVarint(append(buf, tTime), t.Unix())
	return binary.AppendUvarint(buf, uint64(t.Nanosecond())), true
}

func appendStr(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

// decode reads the value at p (col: its column's dictionary) and returns it
// with the position after it.
func (r *row) decode(p int, col *dictCol) (ref.Val, int) {
	d := r.data
	tag := d[p]
	p++
	switch tag {
	case tCode:
		code, n := uvarint(d, p)
		return col.get(uint32(code)), p + n
	case tStr:
		l, n := uvarint(d, p)
		p += n
		return types.String(d[p : p+int(l)]), p + int(l)
	case tInt:
		x, n := varint(d, p)
		return types.Int(x), p + n
	case tUint:
		x, n := uvarint(d, p)
		return types.Uint(x), p + n
	case tDouble:
		bits := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(d[p:]), 8))
		return types.Double(math.Float64frombits(bits)), p + 8
	case tTrue:
		return types.True, p
	case tFalse:
		return types.False, p
	case tTime:
		sec, n := varint(d, p)
		nsec, m := uvarint(d, p+n)
		return types.Timestamp{Time: time.Unix(sec, int64(nsec)).UTC()}, p + n + m
	case tDur:
		x, n := varint(d, p)
		return types.Duration{Duration: time.Duration(x)}, p + n
	case tList:
		return r.decodeList(p)
	case tRef:
		i, n := uvarint(d, p)
		return (*r.refs)[i], p + n
	}
	return nil, p // tNil
}

// decodeList reads a packed list: a missing element reads as null, as in a
// list converted by attr.ToCEL.
func (r *row) decodeList(p int) (ref.Val, int) {
	count, n := uvarint(r.data, p)
	p += n
	elems := make([]ref.Val, count)
	for i := range elems {
		var e ref.Val
		e, p = r.decode(p, nil)
		if e == nil {
			e = types.NullValue
		}
		elems[i] = e
	}
	return types.NewRefValList(types.DefaultTypeAdapter, elems), p
}

// uvarint and varint are binary.Uvarint and Varint over a string (without
// copying it to a byte slice).
func uvarint(s string, p int) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; ; i++ {
		b := s[p+i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
}

func varint(s string, p int) (int64, int) {
	ux, n := uvarint(s, p)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

// toRef converts a mapped value to CEL (a CEL value stays as it is).
func toRef(v any) ref.Val {
	if v == nil {
		return nil
	}
	if rv, ok := v.(ref.Val); ok {
		return rv
	}
	rv, _ := attr.ToCEL(v).(ref.Val)
	return rv
}

// sameRow reports whether two rows hold the same values: the same row (a
// re-sync reuses unchanged rows, Builder.Reuse), equal hashes, or, for rows
// without one, equal account ids and values.
func sameRow(a, b *row) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	if a.hash != 0 && b.hash != 0 {
		return a.hash == b.hash
	}
	if a.account() != b.account() || a.len() != b.len() {
		return false
	}
	for i := range a.len() {
		x, y := a.val(i), b.val(i)
		if x == nil || y == nil {
			if x != y {
				return false
			}
			continue
		}
		if x.Type() != y.Type() || x.Equal(y) != types.True {
			return false
		}
	}
	return true
}
