package profile

import (
	"encoding/binary"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// dictCols are the dictionaries of one source's columns: most attributes take
// a few values over a million rows (a role, a country, a plan, the features
// used), so a row holds a short code, and the value is one boxed CEL value
// all rows share. A column that shows more than maxInterned distinct values (an
// email, a name) codes the first ones and packs the rest inline.
//
// The dictionaries of a source live as long as its rows: the rows of the next
// full sync share them (Builder.Reuse), so a re-sync codes a value it saw
// before with the same code. One writer at a time adds to them (syncs of one
// DataSource are serialized), while readers decode the rows already stored:
// codes are only appended, each in a slot of a fixed chunk array that is
// never moved, so a reader never sees a slot being written.
type dictCols struct {
	cols []*dictCol
}

type dictCol struct {
	// strs and lists find a value's code; the writer's only.
	strs  map[string]uint32
	lists map[string]uint32
	n     uint32
	// chunks hold the values by code.
	chunks [maxInterned / dictChunk]*[dictChunk]ref.Val
}

const (
	// maxInterned is the most distinct values a column codes.
	maxInterned = 4096
	dictChunk   = 256
)

// newDictCols returns empty dictionaries for n columns.
func newDictCols(n int) *dictCols {
	d := &dictCols{cols: make([]*dictCol, n)}
	for i := range d.cols {
		d.cols[i] = &dictCol{}
	}
	return d
}

// col is column i's dictionary (nil: none).
func (d *dictCols) col(i int) *dictCol {
	if d == nil || i >= len(d.cols) {
		return nil
	}
	return d.cols[i]
}

// get is the value of a code.
func (c *dictCol) get(code uint32) ref.Val {
	return c.chunks[code/dictChunk][code%dictChunk]
}

// codeString returns the code of s, adding it while there is room.
func (c *dictCol) codeString(s string) (uint32, bool) {
	if c == nil {
		return 0, false
	}
	if code, ok := c.strs[s]; ok {
		return code, true
	}
	if c.strs == nil {
		c.strs = map[string]uint32{}
	}
	return c.add(c.strs, s, types.String(s))
}

// codeList returns the code of a list of strings, adding it while there is
// room; false for any other list.
func (c *dictCol) codeList(l []any) (uint32, bool) {
	if c == nil {
		return 0, false
	}
	key, ok := listKey(l)
	if !ok {
		return 0, false
	}
	if code, ok := c.lists[key]; ok {
		return code, true
	}
	if c.lists == nil {
		c.lists = map[string]uint32{}
	}
	return c.add(c.lists, key, attr.ToCEL(l).(ref.Val))
}

func (c *dictCol) add(index map[string]uint32, key string, v ref.Val) (uint32, bool) {
	if c.n >= maxInterned {
		return 0, false
	}
	code := c.n
	chunk := c.chunks[code/dictChunk]
	if chunk == nil {
		chunk = new([dictChunk]ref.Val)
		c.chunks[code/dictChunk] = chunk
	}
	chunk[code%dictChunk] = v
	index[key] = code
	c.n++
	return code, true
}

// listKey identifies a list of strings (false for any other list): each
// element prefixed with its length, so ["a", "b"] and ["ab"] differ whatever
// bytes the strings hold.
func listKey(l []any) (string, bool) {
	var buf []byte
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return "", false
		}
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return string(buf), true
}
