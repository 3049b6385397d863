package sqlrule

import (
	"fmt"

	"github.com/usersuccess/persona-operator/internal/rule"
)

// An insight computed in the database: its expression is translated as the
// rule's sub-expressions are (NULL where CEL's value is an error: a member
// without a usable value) and aggregated over the members (the rule as the
// WHERE clause).
//
//   - TopValues (Top true): the query returns (value as text, count) per
//     distinct value, NULL standing for the members without a value. Only
//     string, int and bool values are translated: their text is what the
//     in-memory insight renders. A member's scalar occurs once, so counting
//     members and occurrences agree.
//   - Sum, Average, Min, Max: one row (members with a value, members, sum,
//     min, max), over the value as float8 with NaN as no value, as the
//     in-memory accumulator adds float64s (sums may differ in the last bits
//     by the order of addition).

// InsightQuery is one insight's aggregate query.
type InsightQuery struct {
	Query
	// Top: the rows are TopValues groups (see above), else one row of
	// number aggregates.
	Top bool
}

// Insight translates the aggregate of one insight's expression over the
// members of a rule; a *Refusal says why it is not computed in the database.
func Insight(p, expr *rule.Program, top bool, sources []Source, d Dialect) (*InsightQuery, error) {
	m, err := newMerge(sources)
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	t := newTranslator(p, m, d)
	where, err := t.rule()
	if err != nil {
		return nil, err
	}
	t.checked, t.runes = expr.Checked(), []rune(expr.Source())
	v, err := t.expr(t.checked.Expr())
	if err != nil {
		return nil, err
	}
	var sel, tail string
	switch {
	case top && (v.kind == KindString || v.kind == KindBool):
		sel, tail = fmt.Sprintf("(%s)::text, count(*)", v.sql), "\nWHERE "+where+"\nGROUP BY 1"
	case top && v.kind == KindInt:
		sel, tail = fmt.Sprintf("(%s)::int8::text, count(*)", v.sql), "\nWHERE "+where+"\nGROUP BY 1"
	case top:
		return nil, t.refuse(t.checked.Expr(), "a TopValues insight of %s values is not computed in the database (strings, ints and bools are)", v.kind)
	case v.kind == KindInt || v.kind == KindDouble:
		x := fmt.Sprintf("NULLIF((%s)::float8, 'NaN'::float8)", v.sql)
		sel, tail = fmt.Sprintf("count(%s), count(*), sum(%s), min(%s), max(%s)", x, x, x, x), "\nWHERE "+where
	default:
		return nil, t.refuse(t.checked.Expr(), "not a number")
	}
	sql, err := t.assemble(sel, tail)
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	if len(sql) > MaxSQLBytes {
		return nil, t.refuse(t.checked.Expr(), "its SQL would exceed %d bytes", MaxSQLBytes)
	}
	return &InsightQuery{Query: Query{SQL: sql, Settings: d.Settings(), args: t.args, nowArg: t.nowArg}, Top: top}, nil
}
