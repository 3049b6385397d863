// Package format streams records out of CSV, NDJSON and JSON data for the
// connectors (inline data, HTTP responses, ...).
//
// # Values
//
//   - CSV: every value is a string (the cell, unquoted). Fields is the header row,
//     one slice shared by all records.
//   - NDJSON and JSON: values are decoded as encoding/json decodes into an `any`
//     with UseNumber: string, json.Number, bool, nil, []any and map[string]any
//     (nested values use the same types). Numbers are json.Number, never float64,
//     so integers above 2^53 keep their exact digits; the attribute mapper
//     converts them. Invalid UTF-8 in strings becomes U+FFFD, as in encoding/json.
//     A duplicate key keeps its last value (as encoding/json does) at the position
//     of its first occurrence, so Fields never holds a name twice.
//
// Values are never reused or modified after the visitor returns; callers may
// keep them. To save allocations, the strings of one record may share one
// backing array (encoding/csv does the same), and short strings and numbers that
// repeat in a column (roles, plans, small counts) may be the very same `any`
// across records. Lists and maps are always fresh.
//
// # Field order
//
//   - CSV: header order.
//   - NDJSON: the order of the keys in the line. Consecutive lines with the same
//     keys in the same order share one Fields slice.
//   - JSON: keys sorted (the document is decoded into maps first, so the records
//     path and pagination links can be looked up).
//
// # Record numbers (Record.Num, RecordError.Num)
//
//   - CSV: the 1-based data row (the header is not counted, nor are the empty
//     lines encoding/csv skips). Rejection reasons also name the file line, since a
//     quoted cell may span lines.
//   - NDJSON: the 1-based line number in the input. Blank lines are skipped but
//     counted, so Num is what an editor shows.
//   - JSON: the 1-based index in the records array (plus an offset given by the
//     caller for pagination).
//
// # Errors
//
// A row or line that does not decode is not fatal: the visitor receives a
// *connector.RecordError and reading goes on. A bad CSV header, a missing records
// path, ... are *connector.ConfigError. An invalid JSON document is a
// *SyntaxError. A read error of the underlying reader is returned as is (wrapped).
// A visitor's error stops reading and is returned unwrapped; a cancelled context
// stops reading between records with ctx.Err(). No error message ever quotes the
// input: they name the line, column or field only.
//
// Empty CSV input (no header) is a ConfigError; empty NDJSON input, or a JSON
// null at the records path, is zero records. An NDJSON line longer than
// MaxLineBytes is a record error. A UTF-8 byte order mark at the start of the
// input is skipped, for all formats.
package format
