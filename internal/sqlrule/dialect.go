package sqlrule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// Dialect is what differs between SQL engines: quoting, parameters, byte-order
// string comparison, and how a source column of a given SQL type becomes an
// attribute exactly as the connector and attr.Convert make it. The rest of
// the query uses constructs common to PostgreSQL-wire engines (see the
// package documentation). A second dialect (ClickHouse, BigQuery, Snowflake)
// implements these.
type Dialect interface {
	// Ident quotes an identifier.
	Ident(name string) string
	// Param is the placeholder of the n-th (1-based) bound parameter, cast to
	// a kind's SQL type.
	Param(n int, k Kind) string
	// Bytewise makes a text expression compare in byte order.
	Bytewise(expr string) string
	// Column converts the column ref, of the SQL type the database reports for
	// it, to the representation of an attribute of type t (see the package
	// documentation), or says why it can't exactly.
	Column(ref, sqlType string, t attr.Type) (string, error)
	// Rejects is the condition under which the mapper rejects a record for
	// the value of a column Column accepts ("" when it never does).
	Rejects(ref, sqlType string, t attr.Type) string
	// Converts reports whether the mapper accepts every value of a column
	// of this type as an attribute of type t, though Column may not
	// translate the value: an attribute the rule does not read then keeps
	// no record out, and the source can still be read.
	Converts(sqlType string, t attr.Type) bool
	// ID is the key column ref as the mapper reads it: as text, trimmed of
	// Unicode white space; "" when it can't exactly.
	ID(ref, sqlType string) (string, error)
	// ValidID is the condition under which attr.CheckID accepts a trimmed id.
	ValidID(expr string) string
	// Settings are the session settings the queries must run with.
	Settings() map[string]string
}

// PostgreSQL is the dialect of PostgreSQL 14 and later (extract returns
// numeric), on a UTF8 database.
type PostgreSQL struct{}

// Ident implements Dialect.
func (PostgreSQL) Ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Param implements Dialect.
func (PostgreSQL) Param(n int, k Kind) string {
	return "$" + strconv.Itoa(n) + "::" + pgType(k)
}

func pgType(k Kind) string {
	switch k {
	case KindBool:
		return "boolean"
	case KindInt:
		return "int8"
	case KindDouble:
		return "float8"
	case KindString:
		return "text"
	default:
		return "numeric"
	}
}

// Settings implements Dialect. Nested loops are off: the planner
// estimates the accepted records of a source (a conjunction of function
// conditions over the key) at a row or two, and joins the merged keys to
// them, materialized CTEs without indexes, by a nested loop: quadratic in
// the users (200,000 users ran past a minute). Hash joins make it linear.
func (PostgreSQL) Settings() map[string]string { return map[string]string{"enable_nestloop": "off"} }

// Bytewise implements Dialect.
func (PostgreSQL) Bytewise(expr string) string { return "(" + expr + `) COLLATE "C"` }

// Column implements Dialect. The accepted types are those whose decoded Go
// value (connector/postgres) converts to the attribute without loss or
// parsing; anything else is refused.
func (PostgreSQL) Column(ref, sqlType string, t attr.Type) (string, error) {
	ok := func(types ...string) bool {
		for _, s := range types {
			if s == sqlType {
				return true
			}
		}
		return false
	}
	switch {
	case t == attr.String && ok("text", "varchar"):
		return ref, nil
	case t == attr.Int && ok("int2", "int4", "int8"):
		return ref + "::int8", nil
	case t == attr.Double && ok("float4", "float8"):
		return ref + "::float8", nil
	case t == attr.Double && ok("int2", "int4", "int8"):
		// The mapper converts the decoded integer with float64(x): both round
		// to the nearest double, ties to even (TestIntColumnAsDouble).
		return ref + "::float8", nil
	case t == attr.Bool && ok("bool"):
		return ref, nil
	case t == attr.Timestamp && ok("timestamptz", "timestamp", "date"):
		// extract(epoch ...) is exact numeric seconds with microseconds.
		return "(extract(epoch from " + ref + ") * 1000000000)", nil
	case t == attr.Duration && ok("interval"):
		// The connector counts a year as 365.25 days and a month as 30, as
		// extract(epoch from interval) does, in int64 nanoseconds that wrap
		// silently: the same wrap, in numeric.
		return wrapInt64("(extract(epoch from " + ref + ") * 1000000000)"), nil
	}
	return "", fmt.Errorf("a %s column is not translated exactly to a %s attribute", sqlType, t)
}

// Converts implements Dialect: the connector decodes every array to a
// list of plain values, which a List attribute accepts whatever they hold.
func (d PostgreSQL) Converts(sqlType string, t attr.Type) bool {
	if t == attr.List && strings.HasPrefix(sqlType, "_") {
		return true
	}
	_, err := d.Column("x", sqlType, t)
	return err == nil
}

// Rejects implements Dialect: ±infinity timestamps decode to no time.Time,
// so the mapper rejects their records.
func (PostgreSQL) Rejects(ref, _ string, t attr.Type) string {
	if t == attr.Timestamp {
		return "NOT isfinite(" + ref + ")"
	}
	return ""
}

// wrapInt64 reduces an integer numeric to int64 the way two's complement
// overflow does.
func wrapInt64(x string) string {
	return fmt.Sprintf("(mod(mod(%s + %s, %s) + %s, %s) - %s)", x, two63, two64, two64, two64, two63)
}

const (
	two63 = "9223372036854775808"
	two64 = "18446744073709551616"
)

// unicodeSpace is every rune unicode.IsSpace reports, which strings.TrimSpace
// trims.
const unicodeSpace = " \t\n\v\f\r\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

// controls is every rune unicode.IsControl reports but NUL (PostgreSQL text
// holds none).
var controls = func() string {
	var b strings.Builder
	for r := rune(1); r < 0x20; r++ {
		b.WriteRune(r)
	}
	for r := rune(0x7f); r <= 0x9f; r++ {
		b.WriteRune(r)
	}
	return b.String()
}()

// ID implements Dialect. An integer id is formatted as the mapper formats
// it, through float64: in decimal below 2^53, else as Go's shortest 'g'
// form, which PostgreSQL's float8 output matches (extra_float_digits 1, the
// default: shortest exact digits, an exponent from 1e15 on).
func (d PostgreSQL) ID(ref, sqlType string) (string, error) {
	switch sqlType {
	case "text", "varchar":
		return "btrim(" + ref + ", " + pgString(unicodeSpace) + ")", nil
	case "int2", "int4", "int8":
		return fmt.Sprintf("(CASE WHEN abs(%s::numeric) < 9007199254740992 THEN %s::text ELSE %s::float8::text END)", ref, ref, ref), nil
	}
	return "", fmt.Errorf("a %s key column is not translated (text, varchar and integers are)", sqlType)
}

// ValidID implements Dialect.
func (PostgreSQL) ValidID(expr string) string {
	return fmt.Sprintf("(%s <> '' AND octet_length(%s) <= %d AND char_length(translate(%s, %s, '')) = char_length(%s))",
		expr, expr, attr.MaxIDLength, expr, pgString(controls), expr)
}

// pgString is a string literal of the query's own constants (never user
// data: those are bound parameters). E” so control characters are escaped.
func pgString(s string) string {
	var b strings.Builder
	b.WriteString("E'")
	for _, r := range s {
		switch {
		case r == '\'' || r == '\\':
			b.WriteRune('\\')
			b.WriteRune(r)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r > 0x7e:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("'")
	return b.String()
}
