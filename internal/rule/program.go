package rule

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// CostLimit bounds one evaluation (CEL cost units, as Kubernetes uses for CRD
// validation rules), so no rule can stall the manager. Rules whose estimated
// worst case exceeds it are rejected when compiled; an evaluation that costs
// more at runtime fails (costs.go).
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
	// userDense and accountDense mark the attributes the expression reads: only
	// those get dense columns in a view's snapshot.
	userDense, accountDense []bool
	// UsesNow says whether the expression reads `now`: only such rules can change
	// membership with time alone.
	UsesNow bool
	// reuseFrame: the program has no evaluation observers (cost tracking), so an
	// Evaluator can keep one execution frame for all its profiles.
	reuseFrame bool
	// terms are the rule's top-level clauses that read one attribute each;
	// allTerms: every clause is one (table.go).
	terms    []*term
	allTerms bool
	// analysis and crossings: how time alone changes the rule (timing.go).
	analysis  Analysis
	crossings []crossing
	// output is the type CEL's checker gave the expression.
	output *types.Type
	// checked is the type-checked expression (its && and || flattened when
	// the plan has fast paths), for translators to other languages.
	checked *ast.AST
}

// Compile compiles a Persona rule: it must be a bool.
func Compile(expr string, s Schema) (*Program, error) { return compile(expr, s, true, false) }

// CompileValue compiles an insight expression: any type.
func CompileValue(expr string, s Schema) (*Program, error) { return compile(expr, s, false, false) }

// CompileNumber compiles an insight expression that must give a number (Sum,
// Average, Min, Max): an int, uint or double, or dyn, whose values are
// checked as they come. A string or a list is rejected here, with the type
// CEL found, rather than summed to a silent 0.
func CompileNumber(expr string, s Schema) (*Program, error) {
	p, err := compile(expr, s, false, false)
	if err != nil {
		return nil, err
	}
	if !IsNumber(p.output) {
		return nil, &Error{Msg: fmt.Sprintf("the expression must be a number (int, uint or double), but it is %s", p.output)}
	}
	return p, nil
}

// IsNumber reports whether values of type t can be aggregated as numbers;
// dyn is accepted (its values are checked one by one).
func IsNumber(t *types.Type) bool {
	for _, n := range []*types.Type{types.IntType, types.UintType, types.DoubleType, types.DynType} {
		if t.IsExactType(n) {
			return true
		}
	}
	return false
}

// Language is the rule language apart from the type provider: the variables
// user, account and now, and the options and extensions. Other evaluators of
// rules (kubectl persona explain) build their environment from it, so a rule
// type-checks the same everywhere.
func Language() []cel.EnvOption {
	return append([]cel.EnvOption{
		cel.Variable("user", cel.ObjectType(UserTypeName)),
		cel.Variable("account", cel.ObjectType(AccountTypeName)),
		cel.Variable("now", cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
	}, append(extensions(), sizeGuards())...)
}

// compile compiles an expression; plain leaves CEL's plan as it is (no fast
// paths), which the tests compare the fast paths against.
func compile(expr string, s Schema, wantBool, plain bool) (*Program, error) {
	prov, err := newProvider(s)
	if err != nil {
		return nil, err
	}
	env, err := cel.NewEnv(append([]cel.EnvOption{cel.CustomTypeProvider(prov)}, Language()...)...)
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
	var analysis Analysis
	var crossings []crossing
	if wantBool {
		analysis, crossings = analyzeRule(checked.NativeRep(), s)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	tracked := needsCostTracking(checked.NativeRep())
	var terms []*term
	var allTerms bool
	if tracked {
		// The estimate assumes sizes that values may exceed; the runtime
		// limit stops any evaluation that costs more (costs.go).
		opts = append(opts, cel.CostLimit(CostLimit))
	} else if !plain {
		// `a && b && c && d` parses as a balanced tree of binary calls; one
		// n-ary && is the same function and one interpreter step instead of three.
		flattenLogical(checked.NativeRep().Expr())
		// Direct field reads and allocation-free comparisons (fast.go), and
		// clauses that read one attribute, to tabulate (table.go).
		sel := findSelects(checked.NativeRep(), prov)
		if wantBool {
			terms, allTerms = findTerms(checked.NativeRep().Expr(), sel)
		}
		opts = append(opts, cel.CustomDecoratorV2(sel.decorator(terms)))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	userDense, accountDense := usedFields(checked.NativeRep(), prov)
	return &Program{
		source:       expr,
		prg:          prg,
		userNames:    prov.objects[UserTypeName].names,
		accountNames: prov.objects[AccountTypeName].names,
		userDense:    userDense,
		accountDense: accountDense,
		UsesNow:      referencesIdent(checked.NativeRep().Expr(), "now"),
		reuseFrame:   !tracked,
		terms:        terms,
		allTerms:     allTerms,
		analysis:     analysis,
		crossings:    crossings,
		output:       checked.OutputType(),
		checked:      checked.NativeRep(),
	}, nil
}

// Source is the expression as written.
func (p *Program) Source() string { return p.source }

// Checked is the type-checked expression: every node's type and source
// position, for translating the rule to another language (internal/sqlrule).
// It is shared: read it, never modify it. Nested && and || may be one call
// with more than two operands (the same function; see flattenLogical).
func (p *Program) Checked() *ast.AST { return p.checked }

// ReadsUser reports whether the expression reads the user attribute: selects
// it, or uses `user` as a whole. The Persona controller re-evaluates a persona
// on a playbook state change only if it reads user.playbooks.
func (p *Program) ReadsUser(name string) bool {
	i := sort.SearchStrings(p.userNames, name)
	return i < len(p.userNames) && p.userNames[i] == name && p.userDense[i]
}

// ReadsAccount reports whether the expression reads the account attribute.
func (p *Program) ReadsAccount(name string) bool {
	i := sort.SearchStrings(p.accountNames, name)
	return i < len(p.accountNames) && p.accountNames[i] == name && p.accountDense[i]
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

// analyzeRule finds and compiles a rule's comparisons with now.
func analyzeRule(checked *ast.AST, s Schema) (Analysis, []crossing) {
	uses, cmps, reason := analyzeTime(checked)
	a := Analysis{UsesNow: uses, Reason: reason}
	if !uses || reason != "" {
		return a, nil
	}
	crossings, err := compileCrossings(checked, cmps, s)
	if err != nil {
		a.Reason = "a timestamp or duration compared with now does not compile on its own: " + err.Error()
		return a, nil
	}
	a.Exact, a.Comparisons = true, len(crossings)
	return a, crossings
}

// usedFields marks the user and account attributes an expression selects. Any
// other use of `user` or `account` as a whole (an optional select, an element of
// a list) marks all of that object's attributes.
func usedFields(checked *ast.AST, prov *provider) (user, account []bool) {
	user = make([]bool, len(prov.objects[UserTypeName].names))
	account = make([]bool, len(prov.objects[AccountTypeName].names))
	marks := map[string][]bool{UserTypeName: user, AccountTypeName: account}
	operands := map[int64]bool{}
	visit(checked.Expr(), func(e ast.Expr) {
		if e.Kind() != ast.SelectKind {
			return
		}
		op := e.AsSelect().Operand()
		m, ok := marks[checked.GetType(op.ID()).TypeName()]
		if !ok {
			return
		}
		operands[op.ID()] = true
		names := prov.objects[checked.GetType(op.ID()).TypeName()].names
		if i := sort.SearchStrings(names, e.AsSelect().FieldName()); i < len(names) && names[i] == e.AsSelect().FieldName() {
			m[i] = true
		}
	})
	visit(checked.Expr(), func(e ast.Expr) {
		if m, ok := marks[checked.GetType(e.ID()).TypeName()]; ok && !operands[e.ID()] {
			for i := range m {
				m[i] = true
			}
		}
	})
	return user, account
}

// flattenLogical rewrites nested && (and ||) calls into one call with all the
// operands, in order. CEL's && and || are commutative over errors and
// associative, so the result is the same; only interpreter steps are saved.
func flattenLogical(e ast.Expr) {
	fac := ast.NewExprFactory()
	visit(e, func(x ast.Expr) {
		if x.Kind() != ast.CallKind {
			return
		}
		fn := x.AsCall().FunctionName()
		if fn != operators.LogicalAnd && fn != operators.LogicalOr {
			return
		}
		var args []ast.Expr
		var collect func(a ast.Expr)
		collect = func(a ast.Expr) {
			if a.Kind() == ast.CallKind && a.AsCall().FunctionName() == fn && !a.AsCall().IsMemberFunction() {
				for _, c := range a.AsCall().Args() {
					collect(c)
				}
				return
			}
			args = append(args, a)
		}
		for _, a := range x.AsCall().Args() {
			collect(a)
		}
		if len(args) > len(x.AsCall().Args()) {
			x.SetKindCase(fac.NewCall(x.ID(), fn, args...))
		}
	})
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

// visit walks an expression tree top-down, comprehensions included.
func visit(e ast.Expr, fn func(ast.Expr)) { ast.PreOrderVisit(e, ast.NewExprVisitor(fn)) }
