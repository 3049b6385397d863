package profile

import (
	"encoding/binary"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// interner shares one boxed CEL value among the rows of a sync that hold an
// equal string, or an equal list of strings, in the same column. Most
// attributes take a few values over a million rows (a role, a country, a
// plan, the features used); each row would otherwise hold its own copy of
// the string the driver decoded and its own boxed value of it. A column that
// shows more than maxInterned distinct values (an email, a name) stops being
// interned: it would only fill the map.
type interner struct {
	cols []internCol
}

type internCol struct {
	strs  map[string]ref.Val
	lists map[string]ref.Val
	off   bool
}

// maxInterned is the most distinct values a column interns.
const maxInterned = 4096

// value returns v (a mapped value of column col) as a CEL value, shared with
// the earlier rows that held an equal one.
func (in *interner) value(col int, v any) any {
	for len(in.cols) <= col {
		in.cols = append(in.cols, internCol{})
	}
	c := &in.cols[col]
	if c.off {
		return attr.ToCEL(v)
	}
	switch x := v.(type) {
	case string:
		if s, ok := c.strs[x]; ok {
			return s
		}
		s := types.String(x)
		return c.keep(&c.strs, x, s)
	case []any:
		key, ok := listKey(x)
		if !ok {
			return attr.ToCEL(v)
		}
		if l, ok := c.lists[key]; ok {
			return l
		}
		l := attr.ToCEL(x).(ref.Val)
		return c.keep(&c.lists, key, l)
	}
	return attr.ToCEL(v)
}

// keep adds a value to one of the column's maps while the column stays under
// maxInterned distinct values.
func (c *internCol) keep(m *map[string]ref.Val, key string, v ref.Val) ref.Val {
	if *m == nil {
		*m = map[string]ref.Val{}
	}
	if len(c.strs)+len(c.lists) >= maxInterned {
		c.off, c.strs, c.lists = true, nil, nil
		return v
	}
	(*m)[key] = v
	return v
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
