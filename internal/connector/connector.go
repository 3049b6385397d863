// Package connector defines what every DataSource connector implements: stream the
// records of one sync, in order, and say whether a failure is the user's to fix
// (configuration) or worth retrying (transient).
//
// Connectors do no Kubernetes I/O. The DataSource controller resolves Secrets and
// ConfigMaps and hands each connector a plain config; the connector never logs, and
// its errors never carry credentials or record values (they may be personal).
package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/usersuccess/persona-operator/internal/conditions"
)

// Record is one record of a sync: field names and their raw values, in the order the
// source gave them.
//
// Values are what the source decoded: a CSV cell is a string; a JSON value is a
// string, float64 (or json.Number), bool, nil, []any or map[string]any; a
// PostgreSQL value is the driver's Go type (int64, float64, bool, string,
// time.Time, []byte, nil, ...). The attribute mapper converts them to declared types.
type Record struct {
	// Num is the 1-based position of the record in the sync (CSV: data row; NDJSON:
	// line; JSON: array element; SQL: row), used in rejection reports.
	Num int64
	// Fields are the field names. Connectors may share one slice across records
	// (a CSV header, SQL columns): callers must not modify it.
	Fields []string
	// Values parallel Fields.
	Values []any
}

// Get returns the value of the named field and whether the record has it.
func (r Record) Get(name string) (any, bool) {
	for i, f := range r.Fields {
		if f == name {
			return r.Values[i], true
		}
	}
	return nil, false
}

// Map returns the record as a map, for CEL expressions over `record`.
func (r Record) Map() map[string]any {
	m := make(map[string]any, len(r.Fields))
	for i, f := range r.Fields {
		m[f] = r.Values[i]
	}
	return m
}

// Visitor receives each record, or a per-record error for a record the connector
// could not decode (a malformed CSV row or NDJSON line): such a record is rejected
// and counted, the sync goes on. Returning an error stops the sync with that error.
type Visitor func(rec Record, recErr *RecordError) error

// Source streams the records of one sync.
type Source interface {
	// Fetch calls visit for every record, in order, and returns nil when the whole
	// listing was read. Any error means the sync must not be applied.
	Fetch(ctx context.Context, visit Visitor) error
}

// RecordError says why one record could not be decoded. Reason names the problem
// and the field, never a value.
type RecordError struct {
	Num    int64
	Reason string
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %s", e.Num, e.Reason) }

// ConfigError is a failure that retrying cannot fix: a bad URL, a query that does
// not parse, a missing Secret key, an authentication failure. It is the
// operator's one "the user must fix this" error: the controller sets Stalled
// and emits a Warning Event, then waits for a spec or Secret change.
type ConfigError = conditions.Stalled

// Configf returns a ConfigError with a formatted message.
func Configf(reason, format string, args ...any) error {
	return conditions.Stalledf(reason, format, args...)
}

// IsConfig reports whether err is (or wraps) a ConfigError.
func IsConfig(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// ConfigReason returns the reason of a ConfigError in err's chain, or "".
func ConfigReason(err error) string {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// Interrupted is a listing stopped before its end by a wait longer than the
// sync had left (a rate limit's Retry-After): nothing of it may be applied.
// Resume, handed back to the same connector in a later sync of the same spec,
// continues the listing from the page it stopped at.
type Interrupted struct {
	// Wait is how long the server asked to wait (0: unknown).
	Wait time.Duration
	// Resume is the connector's position, opaque to others.
	Resume any
	Err    error
}

func (e *Interrupted) Error() string {
	return e.Err.Error() + "; the listing goes on from that page at the next sync"
}

func (e *Interrupted) Unwrap() error { return e.Err }
