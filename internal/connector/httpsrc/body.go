package httpsrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// A POST body is a JSON template, never text into which values are pasted: it
// is parsed once, a string value that is exactly a placeholder is replaced by
// a JSON value, and the result encoded again. A cursor with a quote in it, or
// a watermark, cannot change the document's shape.

// Placeholders of a body template.
const (
	PlaceholderSince  = "{since}"
	PlaceholderCursor = "{cursor}"
)

// MaxBodyBytes bounds a body template (as spec.http.body's MaxLength does).
const MaxBodyBytes = 16 << 10

// Body is a parsed body template.
type Body struct {
	root map[string]any
	// Since and Cursor say whether the template has these placeholders.
	Since, Cursor bool
}

// ParseBody checks a body template: one JSON object, whose placeholders are
// whole string values ("{since}" anywhere, "{cursor}" only as an object
// member's value, since that member is left out on the first page), never
// part of a string or a key. Messages name the JSON path, never a value.
func ParseBody(tmpl string) (*Body, error) {
	bad := func(format string, args ...any) (*Body, error) {
		return nil, connector.Configf("InvalidBody", "spec.http.body: "+format, args...)
	}
	if len(tmpl) > MaxBodyBytes {
		return bad("longer than %d bytes", MaxBodyBytes)
	}
	dec := json.NewDecoder(strings.NewReader(tmpl))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return bad("not valid JSON: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("not valid JSON: data after the JSON object")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return bad("must be a JSON object")
	}
	b := &Body{root: obj}
	if err := b.check(obj, "", false); err != nil {
		return bad("%s", err)
	}
	return b, nil
}

// jsonProblem names a decoding error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end"
	}
	return "cannot decode"
}

// check walks v at path; member says whether v is an object member's value.
func (b *Body) check(v any, path string, member bool) error {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			if hasPlaceholder(k) {
				return errors.New("a placeholder must be a value, not a key (" + jsonPath(path, k) + ")")
			}
			if err := b.check(t[k], jsonPath(path, k), true); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range t {
			if err := b.check(e, path+"["+strconv.Itoa(i)+"]", false); err != nil {
				return err
			}
		}
	case string:
		switch {
		case t == PlaceholderSince:
			b.Since = true
		case t == PlaceholderCursor && !member:
			return errors.New(`"{cursor}" must be an object member's value, left out on the first page, not an array element (` + path + ")")
		case t == PlaceholderCursor:
			b.Cursor = true
		case hasPlaceholder(t):
			return errors.New(`a placeholder must be a whole JSON string value, "{since}" or "{cursor}", not part of one (` + path + ")")
		}
	}
	return nil
}

func hasPlaceholder(s string) bool {
	return strings.Contains(s, PlaceholderSince) || strings.Contains(s, PlaceholderCursor)
}

func jsonPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Render is the body of one request: since replaces "{since}" (a string or a
// json.Number), cursor "{cursor}", whose member is left out when cursor is "".
func (b *Body) Render(since any, cursor string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Intercom's operator ">" stays readable
	if err := enc.Encode(fill(b.root, since, cursor)); err != nil {
		return nil, connector.Configf("InvalidBody", "spec.http.body: cannot encode the request body")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// fill copies v with the placeholders replaced.
func fill(v any, since any, cursor string) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if e == PlaceholderCursor && cursor == "" {
				continue
			}
			out[k] = fill(e, since, cursor)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = fill(e, since, cursor)
		}
		return out
	case string:
		switch t {
		case PlaceholderSince:
			return since
		case PlaceholderCursor:
			return cursor
		}
	}
	return v
}
