package httpsrc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// A page is read as a stream: the records array is decoded one element at a
// time and each element visited before the next is read, the pagination
// token (a next link or cursor) is kept, and every other value is skipped.
// A page costs its largest record in memory, not its body plus the decoded
// tree of the whole document (several times the body). Each element is
// decoded by format.ParseJSON, so records are exactly what the whole-document
// decoder gives; an invalid document still fails the sync (the records
// visited before the error are discarded with it, by datasource.Run).

// pageResult is what streaming one page found.
type pageResult struct {
	records int64  // elements of the records array visited
	values  []any  // the value at each of the extracted paths (pagination tokens, flags, totals)
	found   []bool // whether each path exists
}

// errTooLarge marks a body over maxBytes.
var errTooLarge = errors.New("response too large")

// capped reads at most max bytes, then fails with errTooLarge, on every
// later read too (json.Decoder.More drops a read error).
type capped struct {
	r        io.Reader
	left     int64
	tooLarge bool
}

func (c *capped) Read(p []byte) (int, error) {
	if c.tooLarge {
		return 0, errTooLarge
	}
	if c.left <= 0 {
		// One byte more tells a body of exactly max bytes from a larger one.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.tooLarge = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// walker streams one JSON document.
type walker struct {
	ctx     context.Context
	dec     *json.Decoder
	records []string   // the records path's segments (none: the document)
	extract [][]string // the segments of each path whose value is kept
	numBase int64
	visit   connector.Visitor
	res     pageResult
	seen    bool // the records path was found
	path    string
}

func segments(path string) []string {
	if path == "" {
		return []string{}
	}
	return strings.Split(path, ".")
}

// streamPage visits the records of one page read from body and returns the
// values found at the extract paths (pagination tokens, flags, totals).
func streamPage(ctx context.Context, body io.Reader, recordsPath string, extract []string, numBase int64, visit connector.Visitor) (pageResult, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3) // a UTF-8 byte order mark, skipped as ParseJSON does
	}
	w := &walker{ctx: ctx, dec: json.NewDecoder(br), records: segments(recordsPath), numBase: numBase, visit: visit, path: recordsPath}
	w.dec.UseNumber()
	w.res.values, w.res.found = make([]any, len(extract)), make([]bool, len(extract))
	for _, p := range extract {
		var seg []string // nil: nothing to extract (not the whole document)
		if p != "" {
			seg = segments(p)
		}
		w.extract = append(w.extract, seg)
	}
	if err := w.value(nil); err != nil {
		return w.res, err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return w.res, syntaxError(w.dec, err, "data after the JSON document")
	}
	if !w.seen {
		return w.res, connector.Configf("InvalidRecordsPath", "records path %q is not in the JSON document", recordsPath)
	}
	return w.res, nil
}

// syntaxError describes invalid JSON by its offset, never quoting the input.
func syntaxError(dec *json.Decoder, err error, what string) error {
	if errors.Is(err, errTooLarge) {
		return err
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("the response is not JSON: invalid JSON at byte %d", se.Offset)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the response is not JSON: it ends in the middle of a value (byte %d)", dec.InputOffset())
	case err != nil && !isDecodeError(err):
		return fmt.Errorf("reading the response: %w", err) // the connection, not the document
	}
	return fmt.Errorf("the response is not JSON: %s at byte %d", what, dec.InputOffset())
}

// isDecodeError tells the decoder's own errors from the reader's.
func isDecodeError(err error) bool {
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &ue)
}

// match reports whether path (segments so far, from keys or array indices)
// equals target or is a prefix of it. An index segment matches a target
// segment of digits naming the same index, as format.Lookup reads it.
func match(path []pathSeg, target []string) (equal, prefix bool) {
	if target == nil || len(path) > len(target) {
		return false, false
	}
	for i, p := range path {
		if !p.matches(target[i]) {
			return false, false
		}
	}
	return len(path) == len(target), len(path) < len(target)
}

// pathSeg is an object key or an array index.
type pathSeg struct {
	key   string
	index int // -1 for a key
}

func (p pathSeg) matches(seg string) bool {
	if p.index < 0 {
		return p.key == seg
	}
	if seg == "" || len(seg) > 9 {
		return false
	}
	i := 0
	for _, c := range []byte(seg) {
		if c < '0' || c > '9' {
			return false
		}
		i = i*10 + int(c-'0')
	}
	return i == p.index
}

// value reads the value at path: the records, an extracted value, a container
// on the way to one of them (walked), or anything else (skipped).
func (w *walker) value(path []pathSeg) error {
	isRecords, toRecords := match(path, w.records)
	isExtract, toExtract := false, false
	var hits []int
	for i, e := range w.extract {
		is, to := match(path, e)
		if is {
			hits = append(hits, i)
		}
		isExtract, toExtract = isExtract || is, toExtract || to
	}
	switch {
	case isRecords:
		return w.recordsArray()
	case isExtract:
		var v any
		if err := w.dec.Decode(&v); err != nil {
			return syntaxError(w.dec, err, "invalid value")
		}
		for _, i := range hits {
			w.res.values[i], w.res.found[i] = v, true
		}
		return nil
	case !toRecords && !toExtract:
		var skip json.RawMessage
		if err := w.dec.Decode(&skip); err != nil {
			return syntaxError(w.dec, err, "invalid value")
		}
		return nil
	}
	tok, err := w.dec.Token()
	if err != nil {
		return syntaxError(w.dec, err, "invalid value")
	}
	switch tok {
	case json.Delim('{'):
		for w.dec.More() {
			k, err := w.dec.Token()
			if err != nil {
				return syntaxError(w.dec, err, "invalid object key")
			}
			key, _ := k.(string)
			if err := w.value(append(path, pathSeg{key: key, index: -1})); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; w.dec.More(); i++ {
			if err := w.value(append(path, pathSeg{index: i})); err != nil {
				return err
			}
		}
	default:
		return nil // a scalar: the paths below it do not exist
	}
	if _, err := w.dec.Token(); err != nil { // the closing delimiter
		return syntaxError(w.dec, err, "unterminated value")
	}
	return nil
}

// recordsArray visits each element of the array at the records path; null is
// no records.
func (w *walker) recordsArray() error {
	if w.seen {
		return connector.Configf("InvalidRecordsPath", "records path %q appears twice in the JSON document", w.path)
	}
	w.seen = true
	tok, err := w.dec.Token()
	if err != nil {
		return syntaxError(w.dec, err, "invalid value")
	}
	switch t := tok.(type) {
	case nil:
		return nil
	case json.Delim:
		if t != '[' {
			return w.notArray("an object")
		}
	default:
		return w.notArray(format.Kind(t))
	}
	for w.dec.More() {
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			return syntaxError(w.dec, err, "invalid record")
		}
		el, err := format.ParseJSON(raw)
		if err != nil {
			return fmt.Errorf("the response is not JSON: %w", err)
		}
		n, err := format.VisitJSONRecords(w.ctx, []any{el}, "", w.numBase+w.res.records, w.visit)
		w.res.records += n
		if err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return syntaxError(w.dec, err, "unterminated array")
	}
	return nil
}

func (w *walker) notArray(kind string) error {
	return connector.Configf("InvalidRecordsPath", "records path %q is %s, not an array", w.path, kind)
}
