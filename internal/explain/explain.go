package explain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"github.com/google/cel-go/parser"

	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// Subject is the profile explained: attribute values (CEL values) by name,
// built-ins (id, accountId) included. Account is nil when the user has no
// account: every account attribute is then absent.
type Subject struct {
	User    map[string]ref.Val
	Account map[string]ref.Val
}

// Result is an explanation.
type Result struct {
	// Value is what the rule evaluated to; nil when it failed (Err).
	Value ref.Val
	Err   error
	// Tree is the rule with the value of each sub-expression.
	Tree queryapi.Node
	// Attributes are the user and account attributes the rule reads, sorted.
	Attributes []queryapi.Attribute
}

// CompileError is a rule that does not compile against the schema; the message
// is CEL's, with line and column.
type CompileError struct{ Msg string }

func (e *CompileError) Error() string { return e.Msg }

// Explain evaluates expr for one subject with every branch evaluated (no short
// circuit), so that each operand of && and || has a value to show.
func Explain(expr string, s profile.Schema, subj Subject, now time.Time) (Result, error) {
	env, err := newEnv(s)
	if err != nil {
		return Result{}, err
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return Result{}, &CompileError{Msg: strings.TrimSpace(iss.Err().Error())}
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptExhaustiveEval), cel.CostLimit(costLimit))
	if err != nil {
		return Result{}, &CompileError{Msg: err.Error()}
	}
	vars := map[string]any{
		"user":    &object{vals: subj.User},
		"account": &object{vals: subj.Account},
		"now":     types.Timestamp{Time: now},
	}
	w := walker{ast: checked.NativeRep()}
	if err := withinCostLimit(env, checked.NativeRep(), vars); err != nil {
		return Result{Err: err, Tree: w.node(checked.NativeRep().Expr()), Attributes: attributes(checked.NativeRep(), subj)}, nil
	}
	out, det, evalErr := prg.Eval(vars)
	if det != nil {
		w.state = det.State()
	}
	res := Result{Tree: w.node(checked.NativeRep().Expr()), Attributes: attributes(checked.NativeRep(), subj)}
	if evalErr != nil {
		res.Err = evalErr
		return res, nil
	}
	res.Value = out
	return res, nil
}

// walker turns the checked AST and the evaluation state into a report tree.
type walker struct {
	ast   *ast.AST
	state interpreter.EvalState
}

func (w *walker) node(e ast.Expr) queryapi.Node {
	n := queryapi.Node{Expression: w.text(e)}
	n.Value, n.Absent, n.Error = w.value(e)
	if op, kids := logicalChildren(e); kids != nil {
		n.Operator = op
		for _, k := range kids {
			n.Children = append(n.Children, w.node(k))
		}
		return n
	}
	for _, op := range operands(e) {
		o := queryapi.Operand{Expression: w.text(op)}
		o.Value, o.Absent, o.Error = w.value(op)
		n.Operands = append(n.Operands, o)
	}
	return n
}

// value renders the tracked value of an expression: (value, absent, error).
func (w *walker) value(e ast.Expr) (string, bool, string) {
	if w.state == nil {
		return "", false, "not evaluated"
	}
	v, ok := w.state.Value(e.ID())
	if !ok || v == nil {
		return "", false, "not evaluated"
	}
	if errVal, isErr := v.(*types.Err); isErr {
		if rule.IsMissing(errVal) {
			return "", true, ""
		}
		return "", false, errVal.Error()
	}
	return Format(v), false, ""
}

func (w *walker) text(e ast.Expr) string {
	s, err := parser.Unparse(e, w.ast.SourceInfo(), parser.WrapOnColumn(1<<30))
	if err != nil {
		return fmt.Sprintf("<expression %d>", e.ID())
	}
	return s
}

// logicalChildren returns the operator and operands of &&, || (flattened:
// a && b && c is one node with three children), ! and ?:, or nil for any
// other expression.
func logicalChildren(e ast.Expr) (string, []ast.Expr) {
	if e.Kind() != ast.CallKind {
		return "", nil
	}
	c := e.AsCall()
	switch fn := c.FunctionName(); fn {
	case operators.LogicalAnd, operators.LogicalOr:
		var out []ast.Expr
		var collect func(a ast.Expr)
		collect = func(a ast.Expr) {
			if a.Kind() == ast.CallKind && a.AsCall().FunctionName() == fn {
				for _, x := range a.AsCall().Args() {
					collect(x)
				}
				return
			}
			out = append(out, a)
		}
		collect(e)
		return displayOperator[fn], out
	case operators.LogicalNot, operators.Conditional:
		return displayOperator[fn], c.Args()
	}
	return "", nil
}

var displayOperator = map[string]string{
	operators.LogicalAnd: "&&", operators.LogicalOr: "||", operators.LogicalNot: "!", operators.Conditional: "?:",
}

// operands are the non-constant inputs of a leaf: the arguments (and target) of
// a call — the two sides of a comparison — or the range of a comprehension.
func operands(e ast.Expr) []ast.Expr {
	var in []ast.Expr
	switch e.Kind() {
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			in = append(in, c.Target())
		}
		in = append(in, c.Args()...)
	case ast.ComprehensionKind:
		in = append(in, e.AsComprehension().IterRange())
	}
	var out []ast.Expr
	for _, x := range in {
		if x.Kind() != ast.LiteralKind {
			out = append(out, x)
		}
	}
	return out
}

// attributes lists the user.X and account.X attributes expr reads, with the
// subject's values.
func attributes(checked *ast.AST, subj Subject) []queryapi.Attribute {
	seen := map[string]queryapi.Attribute{}
	visit(checked.Expr(), func(e ast.Expr) {
		if e.Kind() != ast.SelectKind {
			return
		}
		op := e.AsSelect().Operand()
		if op.Kind() != ast.IdentKind {
			return
		}
		var vals map[string]ref.Val
		switch checked.GetType(op.ID()).TypeName() {
		case rule.UserTypeName:
			vals = subj.User
		case rule.AccountTypeName:
			vals = subj.Account
		default:
			return
		}
		field := e.AsSelect().FieldName()
		name := op.AsIdent() + "." + field
		a := queryapi.Attribute{Name: name, Absent: true}
		if v, ok := vals[field]; ok && v != nil {
			a = queryapi.Attribute{Name: name, Value: Format(v)}
		}
		seen[name] = a
	})
	out := make([]queryapi.Attribute, 0, len(seen))
	for _, a := range seen {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// visit walks an expression tree top-down, comprehensions included.
func visit(e ast.Expr, fn func(ast.Expr)) { ast.PreOrderVisit(e, ast.NewExprVisitor(fn)) }
