package format

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a JSON decoder that yields exactly what encoding/json (with
// UseNumber) yields when decoding into an `any`, and accepts exactly the inputs
// encoding/json accepts (the fuzz tests check both). It exists for speed: NDJSON
// lines decode straight into a Record (ordered fields, no intermediate map),
// without reflection, and reuse the previous line's field names.

// maxDepth mirrors encoding/json's nesting limit so both accept the same inputs.
const maxDepth = 10000

// SyntaxError reports invalid JSON. It never quotes the input.
type SyntaxError struct {
	Offset int64 // 0-based byte offset at which the problem was found
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// plain marks the bytes a string may contain as is: ASCII, printable, not '"' or '\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

type decoder struct {
	data  []byte
	pos   int
	depth int
	buf   []byte // scratch for strings that need unescaping

	cache  *boxCache      // for the value being decoded; nil: no caching
	caches columnCaches   // per record field position (NDJSON)
	arena  []byte         // the current record's strings and numbers, see fieldValue
	pend   []pending      // the record values still in arena
	prev   []string       // the previous record's fields, see record
	seen   map[string]int // index of the record's fields, once there are many
	seenN  int            // how many fields seen holds
	// prevPlain: no name in prev needs escaping, so a key whose raw bytes
	// equal a name is that name.
	prevPlain bool
}

// pending is a record value whose text is arena[start:end].
type pending struct {
	slot       int // index in the record's values; -1: superseded by a duplicate key
	start, end int
	num        bool
}

func (d *decoder) fail(msg string) error {
	return &SyntaxError{Offset: int64(d.pos), Msg: msg}
}

func (d *decoder) skipWS() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end of input
// (0 is never valid JSON outside a string, so callers treat it as an error).
func (d *decoder) peek() byte {
	if d.pos < len(d.data) && d.data[d.pos] > ' ' {
		return d.data[d.pos] // compact JSON: no call
	}
	d.skipWS()
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// document decodes one value that must span the whole input.
func (d *decoder) document() (any, error) {
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	return v, d.end()
}

// end checks that only whitespace is left.
func (d *decoder) end() error {
	if d.peek() != 0 || d.pos < len(d.data) {
		return d.fail("unexpected data after the top-level value")
	}
	return nil
}

func (d *decoder) value() (any, error) {
	switch c := d.peek(); c {
	case '"':
		b, err := d.str()
		if err != nil {
			return nil, err
		}
		return d.box(b, false), nil
	case '{':
		return d.object()
	case '[':
		return d.array()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || isDigit(c) {
			return d.number()
		}
		if d.pos >= len(d.data) {
			return nil, d.fail("unexpected end of input")
		}
		return nil, d.fail("unexpected character")
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.fail("invalid literal")
	}
	d.pos += len(lit)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits skips a run of digits starting at i and returns the index after it.
func (d *decoder) digits(i int) int {
	for i < len(d.data) && isDigit(d.data[i]) {
		i++
	}
	return i
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and keeps its text.
func (d *decoder) number() (any, error) {
	b, err := d.numberText()
	if err != nil {
		return nil, err
	}
	return d.box(b, true), nil
}

func (d *decoder) numberText() ([]byte, error) {
	start, i := d.pos, d.pos
	if d.data[i] == '-' {
		i++
	}
	switch {
	case i < len(d.data) && d.data[i] == '0':
		i++
	case i < len(d.data) && isDigit(d.data[i]):
		i = d.digits(i)
	default:
		d.pos = i
		return nil, d.fail("invalid number")
	}
	if i < len(d.data) && d.data[i] == '.' {
		if j := d.digits(i + 1); j > i+1 {
			i = j
		} else {
			d.pos = i + 1
			return nil, d.fail("invalid number")
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if j := d.digits(i); j > i {
			i = j
		} else {
			d.pos = i
			return nil, d.fail("invalid number")
		}
	}
	d.pos = i
	return d.data[start:i], nil
}

// box returns b as a string or json.Number in an `any`, from the cache if it can.
func (d *decoder) box(b []byte, num bool) any {
	if d.cache == nil {
		if num {
			return json.Number(b)
		}
		return string(b)
	}
	if v, ok := d.cache.get(b, num); ok {
		return v
	}
	s := string(b)
	var v any = s
	if num {
		v = json.Number(s)
	}
	d.cache.put(s, v)
	return v
}

// push enters an object or array, enforcing the nesting limit.
func (d *decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return d.fail("nesting too deep")
	}
	d.pos++ // '{' or '['
	return nil
}

// next consumes ',' (more to come: true) or the closing byte (false).
func (d *decoder) next(closing byte) (bool, error) {
	switch d.peek() {
	case ',':
		d.pos++
		return true, nil
	case closing:
		d.pos++
		d.depth--
		return false, nil
	case 0:
		if d.pos >= len(d.data) {
			return false, d.fail("unexpected end of input")
		}
	}
	return false, d.fail("expected ',' or '" + string(closing) + "'")
}

// key decodes an object key and the ':' after it. The result aliases the input
// or the scratch buffer: use it before decoding the next string.
func (d *decoder) key() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.fail("expected a string key")
	}
	k, err := d.str()
	if err != nil {
		return nil, err
	}
	if d.peek() != ':' {
		return nil, d.fail("expected ':'")
	}
	d.pos++
	return k, nil
}

func (d *decoder) object() (any, error) {
	if err := d.push(); err != nil {
		return nil, err
	}
	m := make(map[string]any)
	if d.peek() == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	for {
		kb, err := d.key()
		if err != nil {
			return nil, err
		}
		k := string(kb)
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		more, err := d.next('}')
		if err != nil || !more {
			return m, err
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.push(); err != nil {
		return nil, err
	}
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return make([]any, 0), nil // as encoding/json: empty, not nil
	}
	a := make([]any, 0, 4) // short lists (tags, roles) in one allocation
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		more, err := d.next(']')
		if err != nil || !more {
			return a, err
		}
	}
}

// str decodes the string at d.pos (on its opening quote). The result aliases
// the input when no unescaping is needed, else the scratch buffer.
func (d *decoder) str() ([]byte, error) {
	start := d.pos + 1
	i := start
	for {
		for i < len(d.data) && plain[d.data[i]] {
			i++
		}
		if i >= len(d.data) {
			d.pos = len(d.data)
			return nil, d.fail("unexpected end of input in string")
		}
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return d.data[start:i], nil
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			d.pos = i
			return nil, d.fail("control character in string")
		default:
			// Invalid UTF-8 takes the slow path, which replaces it with U+FFFD
			// as encoding/json does.
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				return d.unescape(start)
			}
			i += size
		}
	}
}

// unescape decodes a string that has escapes or invalid UTF-8 into d.buf,
// following encoding/json's unquote rune for rune.
func (d *decoder) unescape(start int) ([]byte, error) {
	b := d.buf[:0]
	i := start
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = b
			return b, nil
		case c == '\\':
			var err error
			if b, i, err = d.escape(b, i); err != nil {
				return nil, err
			}
		case c < 0x20:
			d.pos = i
			return nil, d.fail("control character in string")
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	d.pos = len(d.data)
	return nil, d.fail("unexpected end of input in string")
}

// escape decodes the escape sequence at i, appending to b.
func (d *decoder) escape(b []byte, i int) ([]byte, int, error) {
	if i+1 >= len(d.data) {
		d.pos = len(d.data)
		return nil, 0, d.fail("unexpected end of input in string")
	}
	switch e := d.data[i+1]; e {
	case '"', '\\', '/':
		return append(b, e), i + 2, nil
	case 'b':
		return append(b, '\b'), i + 2, nil
	case 'f':
		return append(b, '\f'), i + 2, nil
	case 'n':
		return append(b, '\n'), i + 2, nil
	case 'r':
		return append(b, '\r'), i + 2, nil
	case 't':
		return append(b, '\t'), i + 2, nil
	case 'u':
		r := hex4(d.data[i+2:])
		if r < 0 {
			d.pos = i
			return nil, 0, d.fail("invalid \\u escape")
		}
		i += 6
		if utf16.IsSurrogate(r) {
			// A valid pair is consumed whole; anything else is U+FFFD and the
			// following escape, if any, is decoded on its own.
			if dec := utf16.DecodeRune(r, u4(d.data[i:])); dec != unicode.ReplacementChar {
				return utf8.AppendRune(b, dec), i + 6, nil
			}
			r = unicode.ReplacementChar
		}
		return utf8.AppendRune(b, r), i, nil
	}
	d.pos = i
	return nil, 0, d.fail("invalid escape")
}

// u4 decodes a `\uXXXX` sequence at the start of s, or returns -1.
func u4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	return hex4(s[2:])
}

// hex4 decodes four hex digits at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Kind names the JSON type of a decoded value ("a string", "null", ...), for
// messages that must not quote the value.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
