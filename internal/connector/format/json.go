package format

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// ReadJSON reads a whole JSON document and calls visit for each element of the
// array at recordsPath (see Lookup; "" is the document itself). Elements that
// are not objects are record errors. An invalid document is a *SyntaxError; a
// missing or non-array records path is a ConfigError.
func ReadJSON(ctx context.Context, r io.Reader, recordsPath string, visit connector.Visitor) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading JSON: %w", err)
	}
	doc, err := ParseJSON(data)
	if err != nil {
		return err
	}
	_, err = VisitJSONRecords(ctx, doc, recordsPath, 0, visit)
	return err
}

// ParseJSON decodes a JSON document as encoding/json does into an `any` with
// UseNumber (a leading UTF-8 BOM is skipped). Errors are *SyntaxError.
func ParseJSON(data []byte) (any, error) {
	d := decoder{data: bytes.TrimPrefix(data, bom)}
	return d.document()
}

// VisitJSONRecords calls visit for each element of the array at recordsPath in
// doc (as ParseJSON returns it), numbering them from numBase+1, and returns how
// many elements it visited. A null at recordsPath is an empty array: APIs
// written in Go often encode an empty list as null.
func VisitJSONRecords(ctx context.Context, doc any, recordsPath string, numBase int64, visit connector.Visitor) (int64, error) {
	v, ok := Lookup(doc, recordsPath)
	if !ok {
		return 0, connector.Configf("InvalidRecordsPath", "records path %q is not in the JSON document", recordsPath)
	}
	if v == nil {
		return 0, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return 0, connector.Configf("InvalidRecordsPath", "records path %q is %s, not an array", recordsPath, Kind(v))
	}
	done := ctx.Done()
	for i, el := range arr {
		if err := canceled(ctx, done); err != nil {
			return int64(i), err
		}
		num := numBase + int64(i) + 1
		var err error
		if obj, ok := el.(map[string]any); ok {
			err = visit(objectRecord(num, obj), nil)
		} else {
			err = visitErr(visit, num, "array element is "+Kind(el)+", not a JSON object")
		}
		if err != nil {
			return int64(i) + 1, err
		}
	}
	return int64(len(arr)), nil
}

// objectRecord turns a decoded object into a record with sorted field names.
func objectRecord(num int64, obj map[string]any) connector.Record {
	fields := slices.Sorted(maps.Keys(obj))
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i] = obj[f]
	}
	return connector.Record{Num: num, Fields: fields, Values: vals}
}

// Lookup follows a dot-separated path into a decoded JSON value: each segment is
// an object key, or an index into an array ("links.0.href"). "" is doc itself.
// Keys containing dots cannot be addressed. ok is false when the path does not
// exist; a JSON null that exists yields (nil, true).
func Lookup(doc any, path string) (any, bool) {
	if path == "" {
		return doc, true
	}
	cur := doc
	for seg := range strings.SplitSeq(path, ".") {
		var ok bool
		switch c := cur.(type) {
		case map[string]any:
			cur, ok = c[seg]
		case []any:
			var i int
			if i, ok = arrayIndex(seg, len(c)); ok {
				cur = c[i]
			}
		}
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// arrayIndex parses a decimal index (digits only) below n.
func arrayIndex(seg string, n int) (int, bool) {
	if seg == "" || len(seg) > 9 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(seg) {
		if !isDigit(c) {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, i < n
}
