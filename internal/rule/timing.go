package rule

import (
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// When does time alone change a rule? A rule reads `now` in comparisons such as
// `account.renewalDate - now <= duration("2160h")`: for each profile, such a
// comparison is a step function of now that flips at one instant (here
// renewalDate - 2160h). If every use of `now` in a rule is in a comparison
// that is linear in now, the rule's result can only change when one of them
// flips, so the earliest flip after now over all profiles is the next time
// membership can change by time alone, and nothing needs re-evaluating before.
//
// Linear means: each side is a sum and difference of `now`, timestamps and
// durations, with `now` on one side (or on both, with different signs in the
// difference of the sides): `T - now <op> D`, `now - T <op> D`, `T <op> now`,
// `now <op> T`, `T <op> now + D`, `T <op> now - D`, `now + D <op> T`,
// `(T - now) - D1 <op> D2`, ... where T and D are any timestamp and duration
// expressions that do not read now, and <op> is <, <=, >, >=, == or !=.
// The comparisons may sit anywhere in the rule (under &&, ||, !, in a ternary)
// except inside a comprehension, whose local variables T and D could not be
// evaluated on their own. T and D are compiled as programs of their own and
// evaluated per profile (or once per distinct value of the one attribute they
// read).

// Analysis is how time alone can change a rule's result.
type Analysis struct {
	// UsesNow says whether the rule reads `now`; if not, time alone never
	// changes its result.
	UsesNow bool
	// Exact says that every use of `now` is in a comparison linear in now, so
	// Evaluator.NextChange finds the next instant at which the result can
	// change. When a rule uses now but is not exact, its result can change at
	// any time and only periodic re-evaluation catches it.
	Exact bool
	// Comparisons is the number of comparisons with now that were solved.
	Comparisons int
	// Reason says why a rule that uses now is not exact.
	Reason string
}

// crossing is one comparison L <op> R with L - R = sigma·now + Σ ±term.
type crossing struct {
	op    string
	sigma int // +1 or -1
	terms []crossTerm
}

// crossTerm is a now-free timestamp or duration subexpression, compiled.
type crossTerm struct {
	expr string
	prg  *Program
	neg  bool
}

// linearForm is a now-dependent (or not) expression as now·coef + Σ ±terms.
type linearForm struct {
	coef  int
	terms []signedExpr
}

type signedExpr struct {
	e   ast.Expr
	neg bool
}

func (l linearForm) minus(r linearForm) linearForm {
	out := linearForm{coef: l.coef - r.coef, terms: append([]signedExpr(nil), l.terms...)}
	for _, t := range r.terms {
		out.terms = append(out.terms, signedExpr{e: t.e, neg: !t.neg})
	}
	return out
}

// analyzer walks a checked rule.
type analyzer struct {
	checked   *ast.AST
	crossings []linearCmp
	reason    string
}

type linearCmp struct {
	op   string
	form linearForm // L - R
}

// analyzeTime finds the comparisons with now of a checked rule. Their terms
// are compiled by the caller.
func analyzeTime(checked *ast.AST) (uses bool, cmps []linearCmp, reason string) {
	a := &analyzer{checked: checked}
	if !a.usesNow(checked.Expr()) {
		return false, nil, ""
	}
	a.walk(checked.Expr(), false)
	return true, a.crossings, a.reason
}

// isNow reports whether e is the variable `now`. A comprehension variable
// named now is reported by walk as not analysable.
func (a *analyzer) isNow(e ast.Expr) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == "now"
}

func (a *analyzer) usesNow(e ast.Expr) bool {
	found := false
	visit(e, func(x ast.Expr) {
		if a.isNow(x) {
			found = true
		}
	})
	return found
}

func (a *analyzer) fail(reason string) {
	if a.reason == "" {
		a.reason = reason
	}
}

var comparisons = map[string]bool{
	operators.Less: true, operators.LessEquals: true, operators.Greater: true, operators.GreaterEquals: true,
	operators.Equals: true, operators.NotEquals: true,
}

func (a *analyzer) isTime(e ast.Expr) bool {
	t := a.checked.GetType(e.ID())
	return t.IsExactType(types.TimestampType) || t.IsExactType(types.DurationType)
}

// walk records the comparisons with now under e; inLoop: e is inside a
// comprehension's loop, where local variables may be in scope.
func (a *analyzer) walk(e ast.Expr, inLoop bool) {
	if e == nil || !a.usesNow(e) {
		return
	}
	switch e.Kind() {
	case ast.IdentKind:
		a.fail("`now` is used outside a comparison of timestamps or durations")
		return
	case ast.CallKind:
		c := e.AsCall()
		if args := c.Args(); comparisons[c.FunctionName()] && !c.IsMemberFunction() && len(args) == 2 &&
			a.isTime(args[0]) && a.isTime(args[1]) {
			if inLoop {
				a.fail("a comparison with `now` inside a comprehension")
				return
			}
			l, okL := a.linear(args[0])
			r, okR := a.linear(args[1])
			if !okL || !okR {
				a.fail("a comparison where `now` is not added to or subtracted from timestamps and durations")
				return
			}
			form := l.minus(r)
			switch form.coef {
			case 0:
				// now cancels out: the comparison does not depend on time.
			case 1, -1:
				a.crossings = append(a.crossings, linearCmp{op: c.FunctionName(), form: form})
			default:
				a.fail("a comparison with a multiple of `now`")
			}
			return
		}
		if c.IsMemberFunction() {
			a.walk(c.Target(), inLoop)
		}
		for _, arg := range c.Args() {
			a.walk(arg, inLoop)
		}
	case ast.SelectKind:
		a.walk(e.AsSelect().Operand(), inLoop)
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			a.walk(el, inLoop)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			a.walk(me.Key(), inLoop)
			a.walk(me.Value(), inLoop)
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			a.walk(f.AsStructField().Value(), inLoop)
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		if c.IterVar() == "now" || c.IterVar2() == "now" || c.AccuVar() == "now" {
			a.fail("a comprehension variable named now")
			return
		}
		a.walk(c.IterRange(), inLoop)
		a.walk(c.AccuInit(), true)
		a.walk(c.LoopCondition(), true)
		a.walk(c.LoopStep(), true)
		a.walk(c.Result(), true)
	default:
		a.fail("`now` in an expression the analysis does not handle")
	}
}

// linear returns e as coef·now + Σ ±terms when e is a sum or difference of now,
// timestamps and durations.
func (a *analyzer) linear(e ast.Expr) (linearForm, bool) {
	if a.isNow(e) {
		return linearForm{coef: 1}, true
	}
	if !a.usesNow(e) {
		return linearForm{terms: []signedExpr{{e: e}}}, a.isTime(e)
	}
	if e.Kind() != ast.CallKind || e.AsCall().IsMemberFunction() || len(e.AsCall().Args()) != 2 || !a.isTime(e) {
		return linearForm{}, false
	}
	c := e.AsCall()
	fn := c.FunctionName()
	if fn != operators.Add && fn != operators.Subtract {
		return linearForm{}, false
	}
	l, ok := a.linear(c.Args()[0])
	if !ok || !a.isTime(c.Args()[0]) {
		return linearForm{}, false
	}
	r, ok := a.linear(c.Args()[1])
	if !ok || !a.isTime(c.Args()[1]) {
		return linearForm{}, false
	}
	if fn == operators.Subtract {
		return l.minus(r), true
	}
	return linearForm{coef: l.coef + r.coef, terms: append(l.terms, r.terms...)}, true
}

// compileCrossings compiles the terms of each comparison as programs of their
// own. A term that does not compile on its own makes the analysis inexact.
func compileCrossings(checked *ast.AST, cmps []linearCmp, s Schema) ([]crossing, error) {
	out := make([]crossing, 0, len(cmps))
	for _, c := range cmps {
		cr := crossing{op: c.op, sigma: c.form.coef}
		for _, t := range c.form.terms {
			text, err := cel.ExprToString(t.e, checked.SourceInfo())
			if err != nil {
				return nil, err
			}
			prg, err := compile(text, s, false, false)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", text, err)
			}
			cr.terms = append(cr.terms, crossTerm{expr: text, prg: prg, neg: t.neg})
		}
		out = append(out, cr)
	}
	return out, nil
}

// instant is a time or duration as seconds and nanoseconds (0 <= nsec < 1e9):
// wide enough for every CEL timestamp and duration and their sums, so a
// crossing is computed exactly however far its terms are from now.
type instant struct{ sec, nsec int64 }

func (a instant) add(b instant) instant { return norm(a.sec+b.sec, a.nsec+b.nsec) }

func (a instant) neg() instant { return norm(-a.sec, -a.nsec) }

func (a instant) less(b instant) bool { return a.sec < b.sec || a.sec == b.sec && a.nsec < b.nsec }

func norm(sec, nsec int64) instant {
	sec += nsec / 1e9
	if nsec %= 1e9; nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return instant{sec, nsec}
}

func (a instant) time() time.Time { return time.Unix(a.sec, a.nsec).UTC() }

// toInstant converts a term's value; false for anything but a timestamp or a
// duration (an error: the comparison fails whatever now is).
func toInstant(v ref.Val) (instant, bool) {
	switch x := v.(type) {
	case types.Timestamp:
		return instant{x.Unix(), int64(x.Nanosecond())}, true
	case types.Duration:
		return norm(int64(x.Duration/time.Second), int64(x.Duration%time.Second)), true
	}
	return instant{}, false
}

// flip returns the first instant after now at which a comparison whose two
// sides differ by sigma·(now - at) changes its value: < and >= change at `at`,
// <= and > a nanosecond later, when the difference grows with now (sigma +1),
// and the other way round when it shrinks; == and != change at `at` and again
// a nanosecond later.
func flip(op string, sigma int, at, now instant) (instant, bool) {
	atZero, atOne := flips(op, sigma)
	candidates := make([]instant, 0, 2)
	if atZero {
		candidates = append(candidates, at)
	}
	if atOne {
		candidates = append(candidates, at.add(instant{0, 1}))
	}
	for _, c := range candidates {
		if now.less(c) {
			return c, true
		}
	}
	return instant{}, false
}

// flips says at which of `at` and a nanosecond later a comparison changes
// its value (see flip).
func flips(op string, sigma int) (atZero, atOne bool) {
	switch op {
	case operators.Less, operators.GreaterEquals:
		return sigma > 0, sigma < 0
	case operators.LessEquals, operators.Greater:
		return sigma < 0, sigma > 0
	}
	return true, true
}

// Crossing is one of a rule's comparisons with now, for computing the next
// change elsewhere than over a view (internal/sqlrule, in the database): the
// comparison's two sides differ by Sigma·now + Σ ±Terms, so for a profile
// it changes its value at the instant At = -Sigma·Σ ±Terms (AtZero) and/or a
// nanosecond later (AtOne); the next change is the earliest such instant
// after now over all profiles, a term that is an error giving none.
type Crossing struct {
	Sigma         int
	Terms         []CrossingTerm
	AtZero, AtOne bool
}

// CrossingTerm is one now-free timestamp or duration of a Crossing, compiled
// on its own, and whether it is subtracted.
type CrossingTerm struct {
	Program *Program
	Neg     bool
}

// Crossings are the rule's comparisons with now, when its Analysis is Exact
// (nil otherwise): what Evaluator.NextChange solves.
func (p *Program) Crossings() []Crossing {
	out := make([]Crossing, 0, len(p.crossings))
	for _, c := range p.crossings {
		x := Crossing{Sigma: c.sigma}
		x.AtZero, x.AtOne = flips(c.op, c.sigma)
		for _, t := range c.terms {
			x.Terms = append(x.Terms, CrossingTerm{Program: t.prg, Neg: t.neg})
		}
		out = append(out, x)
	}
	return out
}

// NextChange returns the earliest instant strictly after the evaluator's now at
// which one of the rule's comparisons with now flips for some profile of the
// view: time alone cannot change the rule's result for any profile before it.
// ok is false when no comparison flips later (given the data). It is
// meaningful only when the program's Analysis is Exact. Changes that only
// arithmetic overflow would cause (a duration beyond ±292 years) are not
// predicted.
func (e *Evaluator) NextChange() (next time.Time, ok bool) {
	return e.nextChange(e.view.Users())
}

// NextChangeAmong is NextChange over the given profiles only (a sparse
// evaluator's: the profiles a change-driven evaluation re-evaluated).
func (e *Evaluator) NextChangeAmong(users []profile.User) (next time.Time, ok bool) {
	return e.nextChange(slices.Values(users))
}

func (e *Evaluator) nextChange(users iter.Seq[profile.User]) (next time.Time, ok bool) {
	if len(e.p.crossings) == 0 || e.view == nil {
		return time.Time{}, false
	}
	now, _ := toInstant(e.s.now)
	var best instant
	for _, c := range e.p.crossings {
		if at, found := e.nextCrossing(c, now, users); found && (!ok || at.less(best)) {
			best, ok = at, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return best.time(), true
}

// nextCrossing is one comparison's earliest flip after now over the view's
// profiles.
func (e *Evaluator) nextCrossing(c crossing, now instant, users iter.Seq[profile.User]) (best instant, found bool) {
	evals := make([]*Evaluator, len(c.terms))
	for i, t := range c.terms {
		evals[i] = t.prg.newEvaluator(e.view, now.time(), e.sparse)
	}
	vals := make([]ref.Val, len(c.terms))
	consider := func() {
		var sum instant
		for i, t := range c.terms {
			v, ok := toInstant(vals[i])
			if !ok {
				return // an error: no value of now changes that
			}
			if t.neg {
				v = v.neg()
			}
			sum = sum.add(v)
		}
		// L - R = sigma·now + sum is zero at now = -sigma·sum.
		at := sum
		if c.sigma > 0 {
			at = sum.neg()
		}
		if next, ok := flip(c.op, c.sigma, at, now); ok && (!found || next.less(best)) {
			best, found = next, true
		}
	}
	// Terms that read at most one dictionary-coded attribute are evaluated
	// once per distinct value of it; others once per profile.
	if account, index, dict, ok := sharedDict(evals); ok {
		for _, v := range dict {
			for i, ev := range evals {
				vals[i], _ = ev.evalProbe(account, index, v)
			}
			consider()
		}
		return best, found
	}
	for u := range users {
		for i, ev := range evals {
			vals[i], _ = ev.Eval(u)
		}
		consider()
	}
	return best, found
}

// sharedDict returns the one attribute all the evaluators' programs read, with
// its dictionary, when its column is dictionary-coded; terms that read no
// attribute are a dictionary of one value.
func sharedDict(evals []*Evaluator) (account bool, index int, dict []ref.Val, ok bool) {
	index = -1
	var owner *Evaluator
	for _, ev := range evals {
		if ev.frame == nil {
			return false, 0, nil, false
		}
		for _, side := range []struct {
			account bool
			dense   []bool
		}{{false, ev.p.userDense}, {true, ev.p.accountDense}} {
			for i, used := range side.dense {
				if !used {
					continue
				}
				if index >= 0 && (index != i || account != side.account) {
					return false, 0, nil, false
				}
				account, index, owner = side.account, i, ev
			}
		}
	}
	if index < 0 {
		return false, 0, []ref.Val{nil}, true
	}
	f := &owner.s.uf
	if account {
		f = &owner.s.af
	}
	if dict = f.Dict(index); dict == nil {
		return false, 0, nil, false
	}
	return account, index, dict, true
}

// evalProbe evaluates the program with attribute (account, index) = v and no
// other attribute.
func (e *Evaluator) evalProbe(account bool, index int, v ref.Val) (ref.Val, error) {
	e.s.probing, e.s.probeAccount, e.s.probeIndex, e.s.probeVal = true, account, index, v
	defer func() { e.s.probing, e.s.probeVal = false, nil }()
	out, _, err := e.p.prg.Eval(e.frame)
	return out, err
}

// Analysis says how time alone can change the program's result.
func (p *Program) Analysis() Analysis { return p.analysis }
