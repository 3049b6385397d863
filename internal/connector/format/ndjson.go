package format

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// MaxLineBytes is the longest NDJSON line ReadNDJSON decodes; a longer line is
// rejected as a record error (and skipped) rather than failing the sync.
const MaxLineBytes = 16 << 20

// bufSize is the read buffer; lines longer than it are assembled in a side buffer.
const bufSize = 256 << 10

var bom = []byte{0xEF, 0xBB, 0xBF}

// ReadNDJSON reads one JSON object per line and calls visit for each. Num is the
// line number; blank lines are skipped (but counted). A line that is not a JSON
// object is a record error; reading goes on.
func ReadNDJSON(ctx context.Context, r io.Reader, visit connector.Visitor) error {
	return readNDJSON(ctx, r, visit, bufSize, MaxLineBytes)
}

// readNDJSON takes the buffer and line sizes so tests can reach the long-line paths.
func readNDJSON(ctx context.Context, r io.Reader, visit connector.Visitor, bufLen, maxLine int) error {
	lr := lineReader{br: bufio.NewReaderSize(r, bufLen), max: maxLine}
	done := ctx.Done()
	var d decoder
	for num := int64(1); ; num++ {
		if err := canceled(ctx, done); err != nil {
			return err
		}
		line, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading NDJSON line %d: %w", num, err)
		}
		if num == 1 && len(line) >= 3 && string(line[:3]) == string(bom) {
			line = line[3:]
		}
		if tooLong {
			err = visitErr(visit, num, fmt.Sprintf("line is longer than %d bytes", maxLine))
		} else {
			err = decodeLine(&d, line, num, visit)
		}
		if err != nil {
			return err
		}
	}
}

// decodeLine decodes one line and hands it to visit, unless it is blank.
func decodeLine(d *decoder, line []byte, num int64, visit connector.Visitor) error {
	d.data, d.pos, d.depth = line, 0, 0
	switch d.peek() {
	case 0:
		if d.pos == len(line) {
			return nil // blank line
		}
	case '{':
		f, vals, err := d.record()
		if err == nil {
			return visit(connector.Record{Num: num, Fields: f, Values: vals}, nil)
		}
		return visitErr(visit, num, syntaxReason(err))
	}
	// Not an object: say whether it is valid JSON of another type or invalid.
	v, err := d.document()
	if err != nil {
		return visitErr(visit, num, syntaxReason(err))
	}
	return visitErr(visit, num, "line is "+Kind(v)+", not a JSON object")
}

func visitErr(visit connector.Visitor, num int64, reason string) error {
	return visit(connector.Record{Num: num}, &connector.RecordError{Num: num, Reason: reason})
}

// syntaxReason words a decoding error for a record error; columns are 1-based.
func syntaxReason(err error) string {
	var se *SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at column %d: %s", se.Offset+1, se.Msg)
	}
	return err.Error()
}

// record decodes a top-level object into ordered fields and values. While the
// keys match the previous record's, in order, its fields are reused: no key is
// allocated and no duplicate check is needed (they have none).
func (d *decoder) record() ([]string, []any, error) {
	d.arena, d.pend = d.arena[:0], d.pend[:0]
	clear(d.seen)
	d.seenN = 0
	if err := d.push(); err != nil {
		return nil, nil, err
	}
	prev := d.prev
	vals := make([]any, 0, len(prev))
	var fields []string // nil while the keys match prev
	if d.peek() == '}' {
		d.pos++
		return nil, vals, d.end()
	}
	for more := true; more; {
		n := len(vals)
		slot := n
		if fields != nil || n >= len(prev) || !d.sameKey(prev[n]) {
			var err error
			if fields, slot, err = d.newKey(prev, fields, n); err != nil {
				return nil, nil, err
			}
		}
		v, err := d.fieldValue(slot)
		if err != nil {
			return nil, nil, err
		}
		if slot < n {
			vals[slot] = v
		} else {
			vals = append(vals, v)
		}
		if more, err = d.next('}'); err != nil {
			return nil, nil, err
		}
	}
	if err := d.end(); err != nil {
		return nil, nil, err
	}
	d.flush(vals)
	if fields == nil {
		return prev[:len(vals):len(vals)], vals, nil
	}
	d.prev, d.prevPlain = fields, allPlain(fields)
	return fields, vals, nil
}

// sameKey consumes the key and ':' at d.pos if the key is name; else it
// consumes nothing. It compares raw bytes, so it only answers for plain names.
func (d *decoder) sameKey(name string) bool {
	if !d.prevPlain || d.peek() != '"' {
		return false
	}
	start, end := d.pos, d.pos+1+len(name)
	if end >= len(d.data) || d.data[end] != '"' || string(d.data[start+1:end]) != name {
		return false
	}
	d.pos = end + 1
	if d.peek() != ':' {
		d.pos = start // let key() report the error
		return false
	}
	d.pos++
	return true
}

// newKey decodes a key that differs from the previous record's n-th field. It
// returns the fields so far (copied from prev on the first difference) and the
// slot of the key's value: a new one, or that of an earlier duplicate.
func (d *decoder) newKey(prev, fields []string, n int) ([]string, int, error) {
	kb, err := d.key()
	if err != nil {
		return nil, 0, err
	}
	if fields == nil && n < len(prev) && string(kb) == prev[n] {
		return nil, n, nil // same name, escaped differently
	}
	if fields == nil {
		fields = append(make([]string, 0, max(len(prev), n+8)), prev[:n]...)
	}
	k := string(kb)
	if slot := d.index(fields, k); slot >= 0 {
		d.supersede(slot) // encoding/json keeps the last value
		return fields, slot, nil
	}
	return append(fields, k), n, nil
}

// allPlain reports whether no name needs escaping in JSON.
func allPlain(names []string) bool {
	for _, s := range names {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
				return false
			}
		}
	}
	return true
}

// fieldValue decodes the value of a record's field. Strings and numbers that
// miss the column's cache are copied into the record's arena and boxed by flush
// once the record is complete: one allocation for all their bytes instead of
// one each (encoding/csv does the same). Other values decode as usual.
func (d *decoder) fieldValue(slot int) (any, error) {
	c := d.caches.at(slot)
	var b []byte
	var err error
	num := false
	switch next := d.peek(); {
	case next == '"':
		b, err = d.str()
	case next == '-' || isDigit(next):
		b, err = d.numberText()
		num = true
	default:
		d.cache = c // nested strings and numbers use the column's cache
		v, err := d.value()
		d.cache = nil
		return v, err
	}
	if err != nil {
		return nil, err
	}
	if v, ok := c.get(b, num); ok {
		return v, nil
	}
	d.pend = append(d.pend, pending{slot: slot, start: len(d.arena), end: len(d.arena) + len(b), num: num})
	d.arena = append(d.arena, b...)
	return nil, nil // set by flush
}

// supersede drops the pending value of a field whose key appears again.
func (d *decoder) supersede(slot int) {
	for i := range d.pend {
		if d.pend[i].slot == slot {
			d.pend[i].slot = -1
		}
	}
}

// flush boxes the pending values into vals, with one string for all their bytes.
func (d *decoder) flush(vals []any) {
	if len(d.pend) == 0 {
		return
	}
	s := string(d.arena)
	for _, p := range d.pend {
		if p.slot < 0 {
			continue
		}
		var v any
		if p.num {
			v = json.Number(s[p.start:p.end])
		} else {
			v = s[p.start:p.end]
		}
		vals[p.slot] = v
		d.caches.at(p.slot).put(s[p.start:p.end], v)
	}
}

// index finds k among the record's fields so far: linearly while they are
// few, then through a map, so that a line with very many keys (up to
// MaxLineBytes) still decodes in linear time.
func (d *decoder) index(fields []string, k string) int {
	if len(fields) < 32 {
		for i, f := range fields {
			if f == k {
				return i
			}
		}
		return -1
	}
	if d.seen == nil {
		d.seen = make(map[string]int)
	}
	for ; d.seenN < len(fields); d.seenN++ {
		d.seen[fields[d.seenN]] = d.seenN
	}
	if i, ok := d.seen[k]; ok {
		return i
	}
	return -1
}

// canceled polls ctx without blocking; done is ctx.Done(), hoisted by the caller.
func canceled(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return ctx.Err()
	default:
		return nil
	}
}

// lineReader yields lines without their '\n'. Unlike bufio.Scanner it survives
// an over-long line: it skips it and reports it, so one bad line does not end
// the sync.
type lineReader struct {
	br   *bufio.Reader
	long []byte // assembles lines longer than the read buffer
	max  int
}

// next returns the next line, valid until the next call, or io.EOF. tooLong
// reports a line over max, whose content is dropped.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	line, err = lr.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return lr.nextLong(line)
	}
	return lr.done(line, err)
}

// nextLong assembles a line longer than the read buffer, up to max bytes.
func (lr *lineReader) nextLong(part []byte) ([]byte, bool, error) {
	lr.long = append(lr.long[:0], part...)
	dropped := false
	for {
		part, err := lr.br.ReadSlice('\n')
		if !dropped && len(lr.long)+len(part) > lr.max+1 {
			dropped = true // stop buffering, but read on to the end of the line
			lr.long = lr.long[:0]
		}
		if !dropped {
			lr.long = append(lr.long, part...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case dropped && (err == nil || err == io.EOF):
			return nil, true, nil
		case dropped:
			return nil, false, err
		}
		return lr.done(lr.long, err)
	}
}

// done drops the '\n'; at EOF a last line without one is still a line.
func (lr *lineReader) done(line []byte, err error) ([]byte, bool, error) {
	switch {
	case err == nil:
		line = line[:len(line)-1]
	case err != io.EOF || len(line) == 0:
		return nil, false, err
	}
	return line, len(line) > lr.max, nil
}
