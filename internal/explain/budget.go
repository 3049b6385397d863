package explain

import (
	"errors"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/parser"

	"github.com/usersuccess/persona-operator/internal/rule"
)

// errCostLimit says an explanation was not run: it would cost more than a
// rule may.
var errCostLimit = errors.New("the rule costs more than the limit of one evaluation")

// withinCostLimit runs the explanation's pieces under CEL's runtime cost limit
// before the exhaustive evaluation runs them all. CEL does not track cost in
// a program that also tracks state (cel-go v0.31: the cost is 0), and
// exhaustive evaluation needs state, so its own cost limit never fires. The
// pieces are the rule and each operand of its &&, || and ?: (the branches
// exhaustive evaluation adds to a short-circuiting one), each evaluated alone
// with rule.CostLimit, without state: the exhaustive evaluation then costs at
// most their sum. (A comprehension that would have stopped early is iterated
// to its end by the exhaustive evaluation; its steps are not pieces.)
func withinCostLimit(env *cel.Env, checked *ast.AST, vars map[string]any) error {
	pieces := []ast.Expr{checked.Expr()}
	visit(checked.Expr(), func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		switch e.AsCall().FunctionName() {
		case operators.LogicalAnd, operators.LogicalOr, operators.Conditional:
			pieces = append(pieces, e.AsCall().Args()...)
		}
	})
	for _, p := range pieces {
		text, err := parser.Unparse(p, checked.SourceInfo(), parser.WrapOnColumn(1<<30))
		if err != nil {
			continue
		}
		a, iss := env.Compile(text)
		if iss.Err() != nil {
			continue // a piece that needs its enclosing comprehension's variables
		}
		prg, err := env.Program(a, cel.CostLimit(rule.CostLimit))
		if err != nil {
			continue
		}
		if _, _, err := prg.Eval(vars); err != nil && strings.Contains(err.Error(), "cost limit exceeded") {
			return errCostLimit
		}
	}
	return nil
}
