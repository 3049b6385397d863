package sqlrule

import (
	"fmt"
	"math"
	"strings"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Bounds of CEL's values, in the SQL representation.
const (
	minInt64 = "-9223372036854775808"
	maxInt64 = "9223372036854775807"
	// Timestamps: CEL's years 1 to 9999 (minUnixTime, maxUnixTime), in
	// nanoseconds.
	minTimeNanos = "-62135596800000000000"
	maxTimeNanos = "253402300799999999999"
)

func (t *translator) call(e ast.Expr) (val, error) {
	c := e.AsCall()
	fn := c.FunctionName()
	switch fn {
	case operators.LogicalAnd, operators.LogicalOr:
		return t.logical(e, fn)
	case operators.LogicalNot:
		a, err := t.typed(c.Args()[0], KindBool)
		if err != nil {
			return val{}, err
		}
		return val{sql: "(NOT " + a.sql + ")", kind: KindBool}, nil
	case operators.Conditional:
		return t.conditional(e)
	case operators.NotStrictlyFalse:
		a, err := t.typed(c.Args()[0], KindBool)
		if err != nil {
			return val{}, err
		}
		return val{sql: "(" + a.sql + " IS NOT FALSE)", kind: KindBool}, nil
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		a, b, err := t.pair(c.Args())
		if err != nil {
			return val{}, err
		}
		return t.compare(e, fn, a, b)
	case operators.Add, operators.Subtract, operators.Multiply, operators.Divide:
		a, b, err := t.pair(c.Args())
		if err != nil {
			return val{}, err
		}
		return t.arith(e, fn, a, b)
	case operators.Negate:
		a, err := t.expr(c.Args()[0])
		if err != nil {
			return val{}, err
		}
		if a.kind != KindInt {
			return val{}, t.refuse(e, "negating a %s is not translated", a.kind)
		}
		return val{sql: "(-NULLIF(" + a.sql + ", " + minInt64 + "))", kind: a.kind}, nil
	case operators.In:
		a, b, err := t.pair(c.Args())
		if err != nil {
			return val{}, err
		}
		return t.in(e, a, b)
	case "size":
		return t.size(e)
	case "startsWith", "endsWith", "contains":
		return t.stringTest(e, fn)
	case "timestamp", "duration":
		return t.constantTime(e, fn)
	case "dyn":
		// dyn only changes the checked type; kinds are tracked here.
		return t.expr(c.Args()[0])
	case "matches":
		return val{}, t.refuse(e, "CEL regular expressions are RE2; SQL's are POSIX or engine-specific, "+
			"which match differently (classes, anchors, repetition, Unicode), so matches() is evaluated in memory only")
	}
	if op, ok := operators.FindReverse(fn); ok {
		return val{}, t.refuse(e, "the operator %s is not translated", op)
	}
	return val{}, t.refuse(e, "the function %s is not translated", fn)
}

// args translates the arguments of a call, receiver first.
func (t *translator) pair(args []ast.Expr) (val, val, error) {
	a, err := t.expr(args[0])
	if err != nil {
		return val{}, val{}, err
	}
	b, err := t.expr(args[1])
	return a, b, err
}

func (t *translator) typed(e ast.Expr, k Kind) (val, error) {
	v, err := t.expr(e)
	if err != nil {
		return val{}, err
	}
	if v.kind != k {
		return val{}, t.refuse(e, "a %s where a %s is expected is not translated", v.kind, k)
	}
	return v, nil
}

// logical: SQL's AND and OR over NULL are CEL's && and || over errors.
func (t *translator) logical(e ast.Expr, fn string) (val, error) {
	op := " AND "
	if fn == operators.LogicalOr {
		op = " OR "
	}
	parts := make([]string, 0, len(e.AsCall().Args()))
	for _, a := range e.AsCall().Args() {
		v, err := t.typed(a, KindBool)
		if err != nil {
			return val{}, err
		}
		parts = append(parts, v.sql)
	}
	return val{sql: "(" + strings.Join(parts, op) + ")", kind: KindBool}, nil
}

func (t *translator) conditional(e ast.Expr) (val, error) {
	args := e.AsCall().Args()
	cond, err := t.typed(args[0], KindBool)
	if err != nil {
		return val{}, err
	}
	a, b, err := t.pair(args[1:])
	if err != nil {
		return val{}, err
	}
	if a.kind != b.kind || a.kind >= kindList {
		return val{}, t.refuse(e, "a conditional between a %s and a %s is not translated", a.kind, b.kind)
	}
	// An error condition is an error: neither branch.
	return val{sql: fmt.Sprintf("(CASE WHEN %s THEN %s WHEN NOT %s THEN %s END)", cond.sql, a.sql, cond.sql, b.sql), kind: a.kind}, nil
}

var sqlOps = map[string]string{operators.Equals: "=", operators.NotEquals: "<>", operators.Less: "<",
	operators.LessEquals: "<=", operators.Greater: ">", operators.GreaterEquals: ">="}

func (t *translator) compare(e ast.Expr, fn string, a, b val) (val, error) {
	if a.kind >= kindList || b.kind >= kindList {
		return val{}, t.refuse(e, "comparing lists or maps is not translated")
	}
	if fn == operators.Equals || fn == operators.NotEquals {
		eq := equal(a, b)
		if fn == operators.NotEquals {
			eq = "(NOT " + eq + ")"
		}
		return val{sql: eq, kind: KindBool}, nil
	}
	op := sqlOps[fn]
	as, bs := a.sql, b.sql
	switch {
	case a.kind == b.kind && a.kind == KindString:
		as = t.d.Bytewise(as)
	case a.kind == b.kind && a.kind != KindDouble:
	case isNumber(a.kind) && isNumber(b.kind):
		return val{sql: orderNumbers(a, b, op), kind: KindBool}, nil
	default:
		// No overload at run time: an error. (Every operand stays in the
		// SQL: a bound parameter no SQL refers to fails the query.)
		return val{sql: fmt.Sprintf("(CASE WHEN %s IS NULL OR %s IS NULL THEN NULL ELSE CAST(NULL AS boolean) END)", a.sql, b.sql), kind: KindBool}, nil
	}
	return val{sql: "(" + as + " " + op + " " + bs + ")", kind: KindBool}, nil
}

func isNumber(k Kind) bool { return k == KindInt || k == KindDouble }

// orderNumbers is CEL's ordering of doubles, or of an int and a double: as
// float64s, false when either is NaN (PostgreSQL orders NaN above every
// number), an error when either is.
func orderNumbers(a, b val, op string) string {
	nans := make([]string, 0, 2)
	for _, v := range []val{a, b} {
		if v.kind == KindDouble {
			nans = append(nans, v.sql+" = 'NaN'::float8")
		}
	}
	return fmt.Sprintf("(CASE WHEN %s IS NULL OR %s IS NULL THEN NULL WHEN %s THEN FALSE ELSE %s %s %s END)",
		a.sql, b.sql, strings.Join(nans, " OR "), asDouble(a), op, asDouble(b))
}

func asDouble(v val) string {
	if v.kind == KindInt {
		return "(" + v.sql + ")::float8"
	}
	return v.sql
}

// bothPresent is true when neither value is an error, NULL otherwise.
func bothPresent(a, b val) string {
	return fmt.Sprintf("(CASE WHEN %s IS NULL OR %s IS NULL THEN NULL ELSE TRUE END)", a.sql, b.sql)
}

// equal is CEL's ==: an error when either side is, NaN equals nothing (it
// equals itself in PostgreSQL), an int equals a double when its float64 does,
// values of other kinds are never equal.
func equal(a, b val) string {
	switch {
	case a.kind == b.kind && a.kind == KindDouble:
		return fmt.Sprintf("(%s = %s AND (%s IS NULL OR %s <> 'NaN'::float8))", a.sql, b.sql, b.sql, a.sql)
	case a.kind == b.kind:
		return "(" + a.sql + " = " + b.sql + ")"
	case isNumber(a.kind) && isNumber(b.kind):
		// An int's float64 is never NaN, and NaN equals only NaN.
		return fmt.Sprintf("(%s = %s)", asDouble(a), asDouble(b))
	}
	return "(NOT " + bothPresent(a, b) + ")"
}

// arith is CEL's checked arithmetic: exact in numeric, NULL out of range.
func (t *translator) arith(e ast.Expr, fn string, a, b val) (val, error) {
	ka, kb := a.kind, b.kind
	switch {
	case fn == operators.Add && ka == KindString && kb == KindString:
		return val{sql: "(" + a.sql + " || " + b.sql + ")", kind: KindString}, nil
	case ka == KindInt && kb == KindInt:
		var x string
		switch fn {
		case operators.Add:
			x = "(" + a.sql + ")::numeric + " + b.sql
		case operators.Subtract:
			x = "(" + a.sql + ")::numeric - " + b.sql
		case operators.Multiply:
			x = "(" + a.sql + ")::numeric * " + b.sql
		default:
			x = "div((" + a.sql + ")::numeric, NULLIF(" + b.sql + ", 0))"
		}
		return val{sql: inRange(x, minInt64, maxInt64), kind: KindInt}, nil
	case fn == operators.Multiply || fn == operators.Divide:
	case ka == KindDuration && kb == KindDuration:
		op := map[string]string{operators.Add: " + ", operators.Subtract: " - "}[fn]
		return val{sql: inRange(a.sql+op+b.sql, minInt64, maxInt64), kind: KindDuration}, nil
	case fn == operators.Add && (ka == KindTimestamp && kb == KindDuration || ka == KindDuration && kb == KindTimestamp):
		return val{sql: inRange(a.sql+" + "+b.sql, minTimeNanos, maxTimeNanos), kind: KindTimestamp}, nil
	case fn == operators.Subtract && ka == KindTimestamp && kb == KindDuration:
		// CEL negates the duration first: the most negative one overflows.
		return val{sql: inRange(a.sql+" - NULLIF("+b.sql+", "+minInt64+")", minTimeNanos, maxTimeNanos), kind: KindTimestamp}, nil
	case fn == operators.Subtract && ka == KindTimestamp && kb == KindTimestamp:
		// CEL subtracts whole seconds, multiplies them by 1e9 in int64, then
		// adds the nanoseconds: both steps must fit.
		// (Multiplying by 1e-9 is exact in numeric; dividing rounds.)
		secs := fmt.Sprintf("(floor(%s * 0.000000001) - floor(%s * 0.000000001))", a.sql, b.sql)
		return val{sql: fmt.Sprintf("(CASE WHEN abs%s <= 9223372036 THEN %s END)", secs,
			inRange(a.sql+" - "+b.sql, minInt64, maxInt64)), kind: KindDuration}, nil
	}
	if ka == KindDouble || kb == KindDouble {
		return val{}, t.refuse(e, "double arithmetic is not translated: SQL engines raise an error on overflow where CEL gives an infinity")
	}
	return val{}, t.refuse(e, "%s of a %s and a %s is not translated", fn, ka, kb)
}

// inRange is x when lo <= x <= hi, NULL otherwise (x appears once: LEAST and
// GREATEST clamp it to one past either bound, which NULLIF then drops).
func inRange(x, lo, hi string) string {
	below, above := "("+lo+" - 1::numeric)", "("+hi+" + 1::numeric)"
	return fmt.Sprintf("NULLIF(NULLIF(LEAST(GREATEST(%s, %s), %s), %s), %s)", x, below, above, below, above)
}

// in is `x in list`: a constant list, or a Signal source's values.
func (t *translator) in(e ast.Expr, x, list val) (val, error) {
	if list.kind != kindList || x.kind >= kindList {
		return val{}, t.refuse(e, "`in` is translated for a value in a list only (not for maps)")
	}
	if list.sig == nil {
		return t.inConstants(x, list), nil
	}
	if list.elem == kindRow {
		return val{}, t.refuse(e, "`in` over a list of signal records (maps) is not translated")
	}
	alias := t.alias()
	elem := val{sql: alias + "." + list.col, kind: list.elem}
	match := fmt.Sprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s.k = p.id AND %s)", t.d.Ident(list.sig.rows()), alias, alias, equal(x, elem))
	return val{sql: fmt.Sprintf("(CASE WHEN %s IS NULL OR NOT %s THEN NULL ELSE %s END)", x.sql, t.anyRow(list.sig), match), kind: KindBool}, nil
}

// inConstants is `x in [literals]` as CEL's optimized plan evaluates it (the
// project compiles with OptOptimize): a set lookup, so `x in []` is false
// even when x is an error; an element matches a value of its own kind, and a
// value of the other number kind it converts to (a double only when the
// conversion to int is lossless), as cel-go builds the set.
func (t *translator) inConstants(x, list val) val {
	if len(list.elems) == 0 {
		// (x stays in the SQL for its parameters.)
		return val{sql: "(" + x.sql + " IS NULL AND FALSE)", kind: KindBool}
	}
	eqs := make([]string, 0, len(list.elems))
	for _, el := range list.elems {
		switch {
		case el.kind == x.kind && x.kind == KindDouble:
			if d := float64(el.lit.(types.Double)); !math.IsNaN(d) { // NaN is in no set
				eqs = append(eqs, "("+x.sql+" = "+t.param(d, KindDouble)+")")
			}
		case el.kind == x.kind:
			eqs = append(eqs, "("+x.sql+" = "+t.constant(el.lit)+")")
		case el.kind == KindInt && x.kind == KindDouble:
			eqs = append(eqs, "("+x.sql+" = "+t.param(float64(el.lit.(types.Int)), KindDouble)+")")
		case el.kind == KindDouble && x.kind == KindInt:
			if iv := el.lit.ConvertToType(types.IntType); !types.IsError(iv) && iv.Equal(el.lit) == types.True {
				eqs = append(eqs, fmt.Sprintf("(%s = ('%d'::int8))", x.sql, int64(iv.(types.Int))))
			}
		}
	}
	if len(eqs) == 0 {
		eqs = []string{"FALSE"}
	}
	return val{sql: fmt.Sprintf("(CASE WHEN %s IS NULL THEN NULL ELSE (%s) END)", x.sql, strings.Join(eqs, " OR ")), kind: KindBool}
}

// constant is the SQL of a bool, int or string literal.
func (t *translator) constant(v ref.Val) string {
	switch x := v.(type) {
	case types.Bool:
		if x {
			return "TRUE"
		}
		return "FALSE"
	case types.Int:
		return fmt.Sprintf("('%d'::int8)", int64(x))
	}
	return t.param(string(v.(types.String)), KindString)
}

func (t *translator) alias() string {
	t.aliases++
	return fmt.Sprintf("e%d", t.aliases)
}

func (t *translator) size(e ast.Expr) (val, error) {
	c := e.AsCall()
	arg := c.Args()
	if c.IsMemberFunction() {
		arg = []ast.Expr{c.Target()}
	}
	if len(arg) != 1 {
		return val{}, t.refuse(e, "size() with %d arguments is not translated", len(arg))
	}
	v, err := t.expr(arg[0])
	if err != nil {
		return val{}, err
	}
	switch {
	case v.kind == KindString:
		// CEL counts code points, as char_length does in a UTF8 database.
		return val{sql: "(char_length(" + v.sql + ")::int8)", kind: KindInt}, nil
	case v.kind == kindList && v.sig == nil:
		return val{sql: fmt.Sprintf("(%d::int8)", len(v.elems)), kind: KindInt}, nil
	case v.kind == kindList:
		// A user without signals has no list (an error), never an empty one.
		alias := t.alias()
		return val{sql: fmt.Sprintf("(SELECT NULLIF(count(*), 0) FROM %s %s WHERE %s.k = p.id)", t.d.Ident(v.sig.rows()), alias, alias), kind: KindInt}, nil
	}
	return val{}, t.refuse(e, "size() of a %s is not translated", v.kind)
}

func (t *translator) stringTest(e ast.Expr, fn string) (val, error) {
	c := e.AsCall()
	if !c.IsMemberFunction() || len(c.Args()) != 1 {
		return val{}, t.refuse(e, "%s() is translated as a string method with one argument", fn)
	}
	s, err := t.typed(c.Target(), KindString)
	if err != nil {
		return val{}, err
	}
	x, err := t.typed(c.Args()[0], KindString)
	if err != nil {
		return val{}, err
	}
	// Prefixes and suffixes of valid UTF-8 are the same in code points and
	// in bytes.
	var sql string
	switch fn {
	case "startsWith":
		sql = fmt.Sprintf("(left(%s, char_length(%s)) = %s)", s.sql, x.sql, x.sql)
	case "endsWith":
		sql = fmt.Sprintf("(right(%s, char_length(%s)) = %s)", s.sql, x.sql, x.sql)
	default:
		sql = fmt.Sprintf("(strpos(%s, %s) > 0)", s.sql, x.sql)
	}
	return val{sql: sql, kind: KindBool}, nil
}

// constantTime folds timestamp("...") and duration("...") of a constant with
// CEL's own conversion.
func (t *translator) constantTime(e ast.Expr, fn string) (val, error) {
	c := e.AsCall()
	if len(c.Args()) != 1 || c.Args()[0].Kind() != ast.LiteralKind {
		return val{}, t.refuse(e, "%s() is translated for a constant only", fn)
	}
	lit := c.Args()[0].AsLiteral()
	kind, typ := KindTimestamp, types.TimestampType
	if fn == "duration" {
		kind, typ = KindDuration, types.DurationType
	}
	out := lit.ConvertToType(typ)
	switch v := out.(type) {
	case types.Timestamp:
		return val{sql: t.param(nanos(v.Time), kind), kind: kind}, nil
	case types.Duration:
		return val{sql: fmt.Sprintf("(%d::numeric)", int64(v.Duration)), kind: kind}, nil
	case *types.Err:
		return val{sql: "CAST(NULL AS numeric)", kind: kind}, nil
	}
	return val{}, t.refuse(e, "%s() of a %s is not translated", fn, lit.Type().TypeName())
}
