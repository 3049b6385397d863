package sqlrule

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// Kind is the runtime type of a translated sub-expression, which decides its
// SQL representation (see the package documentation).
type Kind int

// Kinds of values.
const (
	KindBool Kind = iota
	KindInt
	KindDouble
	KindString
	KindTimestamp
	KindDuration
	kindList // a Signal source's values of the user, or a constant list
	kindRow  // an element of a Signal source without valueAttribute
)

var kindNames = [...]string{"bool", "int", "double", "string", "timestamp", "duration", "list", "map"}

func (k Kind) String() string { return kindNames[k] }

// val is a translated sub-expression: SQL that is NULL exactly where CEL's
// value is an error.
type val struct {
	sql  string
	kind Kind
	// lists: a Signal source's values (sig), or constant elements (elems).
	sig   *source
	elems []val
	// elem is the kind of the elements of a list of values, col their
	// column in the source's rows.
	elem Kind
	col  string
	// lit is a literal's value.
	lit ref.Val
}

// MaxSQLBytes bounds the translated query: some exact translations repeat
// their operands, and a rule whose SQL would be larger is refused.
const MaxSQLBytes = 256 << 10

// Query is a translated rule: SQL returning the members (id, and account id
// or the empty string for none) in byte order of id, and its bound parameters, `now` among
// them. An id repeated in the result
// means a source query returned a key twice (integer ids past 2^53 can
// format alike): a sync keeps the last such record, SQL has no such order,
// so the caller must fail the evaluation rather than guess.
type Query struct {
	SQL string
	// Settings are the session settings to run it with (Dialect.Settings).
	Settings map[string]string
	args     []any
	nowArg   int // index of now in args, -1 when the rule does not read it
}

// Args are the query's bound parameters for an evaluation at now.
func (q *Query) Args(now time.Time) []any {
	out := append([]any(nil), q.args...)
	if q.nowArg >= 0 {
		out[q.nowArg] = nanos(now)
	}
	return out
}

type translator struct {
	d       Dialect
	checked *ast.AST
	runes   []rune
	m       *merge
	args    []any
	nowArg  int
	// user and account attributes read.
	userCols, acctCols columns
	// iteration variables in scope: their value.
	scope   map[string]val
	aliases int
	// signals are the Signal sources the rule reads.
	signals map[*source]bool
}

// Translate translates a compiled rule over the given sources (those of the
// persona's view, all PostgreSQL sources on one database) for dialect d.
// The error is a *Refusal when the rule can't be translated exactly.
func Translate(p *rule.Program, sources []Source, d Dialect) (*Query, error) {
	m, err := newMerge(sources)
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	t := newTranslator(p, m, d)
	where, err := t.rule()
	if err != nil {
		return nil, err
	}
	sql, err := t.query(where)
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	if len(sql) > MaxSQLBytes {
		return nil, t.refuse(t.checked.Expr(), "its SQL would exceed %d bytes", MaxSQLBytes)
	}
	return &Query{SQL: sql, Settings: d.Settings(), args: t.args, nowArg: t.nowArg}, nil
}

// Check says whether a rule can be translated over sources whose query
// columns are not known yet (admission: the webhook does not connect to
// databases): the rule's own constructs, and the sources' declarations. The
// column types are checked when the query is built (Translate).
func Check(p *rule.Program, sources []Source) error {
	m, err := newMerge(sources)
	if err != nil {
		return &Refusal{Reason: err.Error()}
	}
	if _, err := newTranslator(p, m, PostgreSQL{}).rule(); err != nil {
		return err
	}
	if len(m.users) == 0 {
		return &Refusal{Reason: "no PostgreSQL DataSource of entity User: there are no profiles"}
	}
	for _, s := range m.sources {
		for i := range s.Spec.Attributes {
			if a := &s.Spec.Attributes[i]; a.Expression != "" {
				return &Refusal{Reason: fmt.Sprintf("DataSource %s: attribute %s is computed by a CEL expression over the record, which is not translated", s.Name, a.Name)}
			}
		}
	}
	return nil
}

func newTranslator(p *rule.Program, m *merge, d Dialect) *translator {
	return &translator{d: d, checked: p.Checked(), runes: []rune(p.Source()), m: m, nowArg: -1,
		userCols: columns{prefix: "p.u"}, acctCols: columns{prefix: "a.a"}, scope: map[string]val{}, signals: map[*source]bool{}}
}

// rule translates the whole rule: the WHERE condition.
func (t *translator) rule() (string, error) {
	v, err := t.expr(t.checked.Expr())
	if err != nil {
		return "", err
	}
	if v.kind != KindBool {
		return "", t.refuse(t.checked.Expr(), "the rule is not a bool")
	}
	return v.sql, nil
}

// param binds a value and returns its placeholder.
func (t *translator) param(v any, k Kind) string {
	t.args = append(t.args, v)
	return t.d.Param(len(t.args), k)
}

func (t *translator) expr(e ast.Expr) (val, error) {
	switch e.Kind() {
	case ast.LiteralKind:
		return t.literal(e)
	case ast.IdentKind:
		return t.ident(e)
	case ast.SelectKind:
		return t.selectField(e)
	case ast.CallKind:
		return t.call(e)
	case ast.ListKind:
		return t.list(e)
	case ast.ComprehensionKind:
		return t.comprehension(e)
	}
	return val{}, t.refuse(e, "this kind of expression is not translated")
}

func (t *translator) literal(e ast.Expr) (val, error) {
	v, err := t.literalVal(e)
	v.lit = e.AsLiteral()
	return v, err
}

func (t *translator) literalVal(e ast.Expr) (val, error) {
	switch v := e.AsLiteral().(type) {
	case types.Bool:
		if v {
			return val{sql: "TRUE", kind: KindBool}, nil
		}
		return val{sql: "FALSE", kind: KindBool}, nil
	case types.Int:
		return val{sql: fmt.Sprintf("('%d'::int8)", int64(v)), kind: KindInt}, nil
	case types.Double:
		return val{sql: t.param(float64(v), KindDouble), kind: KindDouble}, nil
	case types.String:
		if strings.ContainsRune(string(v), 0) {
			return val{}, t.refuse(e, "a string with a NUL character has no SQL text value")
		}
		return val{sql: t.param(string(v), KindString), kind: KindString}, nil
	}
	return val{}, t.refuse(e, "a %s constant is not translated", e.AsLiteral().Type().TypeName())
}

func (t *translator) ident(e ast.Expr) (val, error) {
	name := e.AsIdent()
	if v, ok := t.scope[name]; ok {
		return v, nil
	}
	if name == "now" {
		return val{sql: t.now(), kind: KindTimestamp}, nil
	}
	return val{}, t.refuse(e, "%s is only translated as the operand of an attribute", name)
}

// now is the placeholder of `now`, bound once.
func (t *translator) now() string {
	if t.nowArg < 0 {
		t.args = append(t.args, nil)
		t.nowArg = len(t.args) - 1
	}
	return t.d.Param(t.nowArg+1, KindTimestamp)
}

func (t *translator) list(e ast.Expr) (val, error) {
	out := val{kind: kindList}
	for _, x := range e.AsList().Elements() {
		if x.Kind() != ast.LiteralKind {
			return val{}, t.refuse(x, "only lists of literals are translated")
		}
		// The SQL of an element is made when used: a bound parameter no
		// SQL refers to fails the query.
		var v val
		switch x.AsLiteral().(type) {
		case types.Bool:
			v.kind = KindBool
		case types.Int:
			v.kind = KindInt
		case types.Double:
			v.kind = KindDouble
		case types.String:
			v.kind = KindString
		default:
			return val{}, t.refuse(x, "a list of %s is not translated", x.AsLiteral().Type().TypeName())
		}
		v.lit = x.AsLiteral()
		if s, ok := v.lit.(types.String); ok && strings.ContainsRune(string(s), 0) {
			return val{}, t.refuse(x, "a string with a NUL character has no SQL text value")
		}
		out.elems = append(out.elems, v)
	}
	return out, nil
}

// selectField translates user.f, account.f, element.f and has() of them.
func (t *translator) selectField(e ast.Expr) (val, error) {
	sel := e.AsSelect()
	op := sel.Operand()
	if op.Kind() == ast.IdentKind {
		if v, ok := t.scope[op.AsIdent()]; ok {
			return t.rowField(e, v, sel.FieldName(), sel.IsTestOnly())
		}
		switch op.AsIdent() {
		case "user":
			return t.userField(e, sel.FieldName(), sel.IsTestOnly())
		case "account":
			return t.accountField(e, sel.FieldName(), sel.IsTestOnly())
		}
	}
	return val{}, t.refuse(e, "only attributes of user and account, and fields of a signal, are translated")
}

func present(sql string, test bool, k Kind) val {
	if test {
		return val{sql: "(" + sql + " IS NOT NULL)", kind: KindBool}
	}
	return val{sql: sql, kind: k}
}

func (t *translator) userField(e ast.Expr, name string, test bool) (val, error) {
	switch name {
	case attr.UserIDAttr:
		return present("p.id", test, KindString), nil
	case attr.AccountIDAttr:
		return present("p.acct", test, KindString), nil
	case attr.PlaybooksAttr:
		return val{}, t.refuse(e, "user.playbooks is the Playbook controller's in-memory state, not in the database")
	}
	cands := t.m.userAttr[name]
	if len(cands) == 0 {
		return val{}, t.refuse(e, "no PostgreSQL DataSource declares user.%s", name)
	}
	if t.m.userType[name] == attr.List {
		if len(cands) != 1 || cands[0].m != nil {
			return val{}, t.refuse(e, "user.%s is a list from a column or from more than one source; only one Signal source's list is translated", name)
		}
		s := cands[0].src
		v, err := t.signalList(s)
		if err != nil {
			return val{}, t.refuse(e, "%v", err)
		}
		if test {
			return val{sql: "(" + t.anyRow(s) + ")", kind: KindBool}, nil
		}
		return v, nil
	}
	return t.scalarField(e, "user", name, test, cands, t.m.userType[name], v1alpha1.EntityUser, &t.userCols,
		"also comes from Signal source %s")
}

func (t *translator) accountField(e ast.Expr, name string, test bool) (val, error) {
	if name == attr.UserIDAttr {
		return present("p.acct", test, KindString), nil
	}
	cands := t.m.acctAttr[name]
	if len(cands) == 0 {
		return val{}, t.refuse(e, "no PostgreSQL DataSource declares account.%s", name)
	}
	return t.scalarField(e, "account", name, test, cands, t.m.acctType[name], v1alpha1.EntityAccount, &t.acctCols,
		"is carried on the user records of DataSource %s: which user's record wins is not translated")
}

// scalarField is a merged attribute of user or account (object) read from
// sources of entity want (others: refused with wrongSource, given the
// source's name): its column in cols.
func (t *translator) scalarField(e ast.Expr, object, name string, test bool, cands []cand, typ attr.Type,
	want v1alpha1.Entity, cols *columns, wrongSource string) (val, error) {
	k, err := kindOf(typ)
	if err != nil {
		return val{}, t.refuse(e, "%s.%s: %v", object, name, err)
	}
	for _, c := range cands {
		if c.m == nil || c.src.entity != want {
			return val{}, t.refuse(e, "%s.%s "+wrongSource, object, name, c.src.Name)
		}
		if c.m.Expression != "" {
			return val{}, t.refuse(e, "%s.%s is computed by a CEL expression in DataSource %s, which is not translated", object, name, c.src.Name)
		}
	}
	return present(cols.ref(name), test, k), nil
}

// columns are the merged attributes of user (p.u0, p.u1...) or account
// (a.a0...) the rule reads, in order of first use.
type columns struct {
	prefix string
	order  []string
}

func (c *columns) ref(name string) string {
	i := slices.Index(c.order, name)
	if i < 0 {
		i = len(c.order)
		c.order = append(c.order, name)
	}
	return fmt.Sprintf("%s%d", c.prefix, i)
}

func kindOf(t attr.Type) (Kind, error) {
	switch t {
	case attr.String:
		return KindString, nil
	case attr.Int:
		return KindInt, nil
	case attr.Double:
		return KindDouble, nil
	case attr.Bool:
		return KindBool, nil
	case attr.Timestamp:
		return KindTimestamp, nil
	case attr.Duration:
		return KindDuration, nil
	}
	return 0, fmt.Errorf("%s attributes are not translated", t)
}

// nanos is a time as exact numeric nanoseconds since the Unix epoch, in text.
func nanos(tm time.Time) string {
	n := new(big.Int).Mul(big.NewInt(tm.Unix()), big.NewInt(1e9))
	return n.Add(n, big.NewInt(int64(tm.Nanosecond()))).String()
}
