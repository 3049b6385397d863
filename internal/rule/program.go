package rule

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// CostLimit bounds one evaluation (CEL cost units, as Kubernetes uses for CRD
// validation rules), so no rule can stall the manager. Rules whose estimated
// worst case exceeds it are rejected when compiled.
const CostLimit = 1_000_000

// Size assumptions for the cost estimate: lists and maps of at most maxListSize
// elements, strings of at most maxStringSize bytes.
const (
	maxListSize   = 10_000
	maxStringSize = 4096
)

// Program is a compiled rule or insight expression, bound to the schema it was
// checked against. It is safe for concurrent use; evaluate through Evaluators.
type Program struct {
	source       string
	prg          cel.Program
	userNames    []string
	accountNames []string
	// UsesNow says whether the expression reads `now`: only such rules can change
	// membership with time alone.
	UsesNow bool
}

// Compile compiles a Persona rule: it must be a bool.
func Compile(expr string, s Schema) (*Program, error) { return compile(expr, s, true) }

// CompileValue compiles an insight expression: any type.
func CompileValue(expr string, s Schema) (*Program, error) { return compile(expr, s, false) }

func compile(expr string, s Schema, wantBool bool) (*Program, error) {
	prov, err := newProvider(s)
	if err != nil {
		return nil, err
	}
	env, err := cel.NewEnv(
		cel.CustomTypeProvider(prov),
		cel.Variable("user", cel.ObjectType(userTypeName)),
		cel.Variable("account", cel.ObjectType(accountTypeName)),
		cel.Variable("now", cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(), ext.Sets(), ext.Lists(), ext.Math(),
	)
	if err != nil {
		return nil, err
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, &Error{Msg: iss.Err().Error()}
	}
	if wantBool && !checked.OutputType().IsExactType(types.BoolType) {
		return nil, &Error{Msg: fmt.Sprintf("the rule must be a bool expression, but it is %s", checked.OutputType())}
	}
	est, err := env.EstimateCost(checked, sizeEstimator{})
	if err != nil {
		return nil, &Error{Msg: "estimating cost: " + err.Error()}
	}
	if est.Max > CostLimit {
		return nil, &Error{Msg: fmt.Sprintf("the estimated cost %d exceeds the limit %d "+
			"(lists are assumed to hold up to %d elements): simplify the expression", est.Max, CostLimit, maxListSize)}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if hasComprehension(checked.NativeRep().Expr()) {
		// The estimate assumes list sizes; a runtime limit catches larger lists.
		// Tracking cost costs an allocation per evaluation, so only rules that
		// iterate pay it.
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	return &Program{
		source:       expr,
		prg:          prg,
		userNames:    prov.objects[userTypeName].names,
		accountNames: prov.objects[accountTypeName].names,
		UsesNow:      referencesIdent(checked.NativeRep().Expr(), "now"),
	}, nil
}

// Error is a compile error; Msg holds CEL's message with line and column.
type Error struct{ Msg string }

func (e *Error) Error() string { return strings.TrimSpace(e.Msg) }

// sizeEstimator bounds sizes for the cost estimate.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	switch element.Type().Kind() {
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: maxListSize}
	case types.StringKind, types.BytesKind:
		return &checker.SizeEstimate{Min: 0, Max: maxStringSize}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}

func hasComprehension(e ast.Expr) bool {
	found := false
	visit(e, func(x ast.Expr) {
		if x.Kind() == ast.ComprehensionKind {
			found = true
		}
	})
	return found
}

func referencesIdent(e ast.Expr, name string) bool {
	found := false
	visit(e, func(x ast.Expr) {
		if x.Kind() == ast.IdentKind && x.AsIdent() == name {
			found = true
		}
	})
	return found
}

// visit walks an expression tree.
func visit(e ast.Expr, fn func(ast.Expr)) {
	if e == nil {
		return
	}
	fn(e)
	switch e.Kind() {
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			visit(c.Target(), fn)
		}
		for _, a := range c.Args() {
			visit(a, fn)
		}
	case ast.SelectKind:
		visit(e.AsSelect().Operand(), fn)
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			visit(el, fn)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			visit(me.Key(), fn)
			visit(me.Value(), fn)
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			visit(f.AsStructField().Value(), fn)
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		visit(c.IterRange(), fn)
		visit(c.AccuInit(), fn)
		visit(c.LoopCondition(), fn)
		visit(c.LoopStep(), fn)
		visit(c.Result(), fn)
	}
}
