package sqlrule

import (
	"fmt"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// A Signal source's list is the user's rows in the source (one element per
// accepted record); a user without any has no list (has() is false, reading
// it an error), never an empty one.

// signalList is the user's list of a Signal source: its values
// (valueAttribute), or its records as maps.
func (t *translator) signalList(s *source) (val, error) {
	t.signals[s] = true
	va := s.Spec.Signal.ValueAttribute
	if va == "" {
		return val{kind: kindList, sig: s, elem: kindRow}, nil
	}
	m := mapping(s, va)
	if m == nil {
		return val{}, fmt.Errorf("DataSource %s: spec.signal.valueAttribute %s is not declared", s.Name, va)
	}
	k, err := kindOf(attr.Type(m.Type))
	if err != nil {
		return val{}, fmt.Errorf("DataSource %s, value attribute %s: %w", s.Name, va, err)
	}
	return val{kind: kindList, sig: s, elem: k, col: s.use(m)}, nil
}

func mapping(s *source, name string) *v1alpha1.AttributeMapping {
	for i := range s.Spec.Attributes {
		if s.Spec.Attributes[i].Name == name {
			return &s.Spec.Attributes[i]
		}
	}
	return nil
}

// anyRow is true when the user has a list in s.
func (t *translator) anyRow(s *source) string {
	t.signals[s] = true
	alias := t.alias()
	return fmt.Sprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s.k = p.id)", t.d.Ident(s.rows()), alias, alias)
}

// rowField is `e.f` of an element e of a list of signal records: absent
// when the record had no value.
func (t *translator) rowField(e ast.Expr, row val, name string, test bool) (val, error) {
	if row.kind != kindRow {
		return val{}, t.refuse(e, "selecting a field of a %s is not translated", row.kind)
	}
	m := mapping(row.sig, name)
	if m == nil {
		// A map without the key: has() is false, reading it an error.
		if test {
			return val{sql: "FALSE", kind: KindBool}, nil
		}
		return val{sql: "CAST(NULL AS boolean)", kind: KindBool}, nil
	}
	k, err := kindOf(attr.Type(m.Type))
	if err != nil {
		return val{}, t.refuse(e, "field %s: %v", name, err)
	}
	return present(row.sql+"."+row.sig.use(m), test, k), nil
}

// comprehension translates exists() and all() over a Signal source's list:
// exists is true when a predicate is true, else an error when one is an
// error, else false (all: the same with false), whatever the order, as
// CEL's || and && absorb errors.
func (t *translator) comprehension(e ast.Expr) (val, error) {
	c := e.AsComprehension()
	quant, pred, ok := macro(c)
	if !ok || c.HasIterVar2() {
		return val{}, t.refuse(e, "only exists() and all() comprehensions are translated")
	}
	list, err := t.expr(c.IterRange())
	if err != nil {
		return val{}, err
	}
	if list.kind != kindList || list.sig == nil {
		return val{}, t.refuse(c.IterRange(), "exists() and all() are translated over a Signal source's list only")
	}
	if _, shadow := t.scope[c.IterVar()]; shadow {
		return val{}, t.refuse(e, "nested comprehensions over the same variable are not translated")
	}
	alias := t.alias()
	elem := val{sql: alias + "." + list.col, kind: list.elem}
	if list.elem == kindRow {
		elem = val{sql: alias, kind: kindRow, sig: list.sig}
	}
	t.scope[c.IterVar()] = elem
	p, err := t.expr(pred)
	delete(t.scope, c.IterVar())
	if err != nil {
		return val{}, err
	}
	if p.kind != KindBool {
		return val{}, t.refuse(pred, "the predicate is not a bool")
	}
	rows := func(cond string) string {
		return fmt.Sprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s.k = p.id AND (%s) %s)", t.d.Ident(list.sig.rows()), alias, alias, p.sql, cond)
	}
	decisive, result, other := "IS TRUE", "TRUE", "FALSE"
	if quant == "all" {
		decisive, result, other = "IS FALSE", "FALSE", "TRUE"
	}
	return val{sql: fmt.Sprintf("(CASE WHEN NOT %s THEN NULL WHEN %s THEN %s WHEN %s THEN NULL ELSE %s END)",
		t.anyRow(list.sig), rows(decisive), result, rows("IS NULL"), other), kind: KindBool}, nil
}

// macro recognises the expansion of exists() (accumulator false, step
// `acc || pred`) and all() (true, `acc && pred`), and returns the predicate.
func macro(c ast.ComprehensionExpr) (string, ast.Expr, bool) {
	init, step, res := c.AccuInit(), c.LoopStep(), c.Result()
	if init.Kind() != ast.LiteralKind || step.Kind() != ast.CallKind || res.Kind() != ast.IdentKind || res.AsIdent() != c.AccuVar() {
		return "", nil, false
	}
	call := step.AsCall()
	args := call.Args()
	if len(args) != 2 || args[0].Kind() != ast.IdentKind || args[0].AsIdent() != c.AccuVar() {
		return "", nil, false
	}
	switch {
	case init.AsLiteral() == types.False && call.FunctionName() == operators.LogicalOr:
		return "exists", args[1], true
	case init.AsLiteral() == types.True && call.FunctionName() == operators.LogicalAnd:
		return "all", args[1], true
	}
	return "", nil, false
}
