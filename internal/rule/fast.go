package rule

import (
	"sort"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Fast paths. CEL plans `user.nps` as an attribute resolved by name through the
// activation, qualified through the provider's field accessors and adapted back
// to a CEL value; `account.renewalDate - now` allocates the Duration it returns.
// For a million profiles per evaluation that is most of the cost, so programs
// without comprehensions get their plan decorated:
//
//   - `user.f`, `account.f` and `has(...)` of them read the profile's resolved
//     column directly (no name lookup, no boxing, no allocation);
//   - `now` reads the evaluator's timestamp;
//   - `==`, `!=`, `<`, `<=`, `>`, `>=` between such a field and a string or int
//     constant compare the Go values;
//   - a timestamp or duration comparison with arithmetic on either side
//     (`T - now <= D`, `T < now - D`, ...) is computed on int64 nanoseconds
//     without allocating.
//
// Every fast node keeps the node it replaces and defers to it whenever the fast
// path does not apply (a value outside the range where the int64 arithmetic is
// exact, an error, an unexpected activation), so results are exactly CEL's.
// Programs with comprehensions (which may bind local variables and are
// cost-tracked) are left as planned.

// selects finds the expression ids of `user.f` / `account.f` selects (and has()
// tests of them) and of `now` identifiers in a checked expression.
type selects struct {
	fields map[int64]fieldSel
	now    map[int64]bool
	// done holds the ids already given a fast node. CEL decorates an id a
	// second time when the node is the operand of an index or select
	// (user.playbooks["x"]): it wraps the fast node in an attribute to qualify,
	// and that wrapper must stay an attribute.
	done map[int64]bool
}

type fieldSel struct {
	account bool
	index   int
	test    bool
	name    string
}

func findSelects(checked *ast.AST, prov *provider) selects {
	out := selects{fields: map[int64]fieldSel{}, now: map[int64]bool{}, done: map[int64]bool{}}
	visit(checked.Expr(), func(e ast.Expr) {
		switch e.Kind() {
		case ast.IdentKind:
			if e.AsIdent() == "now" && checked.GetType(e.ID()).IsExactType(types.TimestampType) {
				out.now[e.ID()] = true
			}
		case ast.SelectKind:
			sel := e.AsSelect()
			op := sel.Operand()
			if op.Kind() != ast.IdentKind {
				return
			}
			var typeName string
			switch op.AsIdent() {
			case "user":
				typeName = UserTypeName
			case "account":
				typeName = AccountTypeName
			default:
				return
			}
			if checked.GetType(op.ID()).TypeName() != typeName {
				return
			}
			names := prov.objects[typeName].names
			i := sort.SearchStrings(names, sel.FieldName())
			if i == len(names) || names[i] != sel.FieldName() {
				return
			}
			out.fields[e.ID()] = fieldSel{account: typeName == AccountTypeName, index: i, test: sel.IsTestOnly(), name: sel.FieldName()}
		}
	})
	return out
}

// decorator returns the plan decorator installing the fast nodes, and
// recording the planned node of each term.
func (s selects) decorator(terms []*term) interpreter.InterpretableDecoratorV2 {
	byID := map[int64]*term{}
	for _, t := range terms {
		byID[t.id] = t
	}
	decorate := s.decorate
	return func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		out, err := decorate(i)
		if t, ok := byID[i.ID()]; ok && err == nil {
			t.node = out
		}
		return out, err
	}
}

func (s selects) decorate(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	if _, isAttr := i.(interpreter.InterpretableAttribute); isAttr {
		if s.done[i.ID()] {
			return i, nil
		}
		if _, isField := s.fields[i.ID()]; isField || s.now[i.ID()] {
			s.done[i.ID()] = true
		}
		if f, ok := s.fields[i.ID()]; ok {
			if f.test {
				return &hasNode{id: i.ID(), account: f.account, index: f.index, orig: i}, nil
			}
			return &fieldNode{id: i.ID(), account: f.account, index: f.index, orig: i,
				missing: types.LabelErrNode(i.ID(), types.WrapErr(missing{name: f.name}))}, nil
		}
		if s.now[i.ID()] {
			return &nowNode{id: i.ID(), orig: i}, nil
		}
		return i, nil
	}
	if call, ok := i.(interpreter.InterpretableCall); ok {
		if n := fuseTimeCompare(call); n != nil {
			return n, nil
		}
		if n := fuseFieldCompare(call); n != nil {
			return n, nil
		}
	}
	return i, nil
}

// subjectOf returns the evaluator's activation, or nil in any frame the fast
// nodes were not built for.
func subjectOf(f *interpreter.ExecutionFrame) *subject {
	s, _ := f.Activation.(*subject)
	return s
}

type fieldNode struct {
	id      int64
	account bool
	index   int
	missing ref.Val
	orig    interpreter.InterpretableV2
}

func (n *fieldNode) ID() int64 { return n.id }

func (n *fieldNode) Eval(a interpreter.Activation) ref.Val { return n.Exec(interpreter.AsFrame(a)) }

func (n *fieldNode) Exec(f *interpreter.ExecutionFrame) ref.Val {
	s := subjectOf(f)
	if s == nil {
		return n.orig.Exec(f)
	}
	var v ref.Val
	if n.account {
		v = s.accountVal(n.index)
	} else {
		v = s.userVal(n.index)
	}
	if v == nil {
		return n.missing
	}
	return v
}

type hasNode struct {
	id      int64
	account bool
	index   int
	orig    interpreter.InterpretableV2
}

func (n *hasNode) ID() int64 { return n.id }

func (n *hasNode) Eval(a interpreter.Activation) ref.Val { return n.Exec(interpreter.AsFrame(a)) }

func (n *hasNode) Exec(f *interpreter.ExecutionFrame) ref.Val {
	s := subjectOf(f)
	if s == nil {
		return n.orig.Exec(f)
	}
	if n.account {
		return types.Bool(s.accountVal(n.index) != nil)
	}
	return types.Bool(s.userVal(n.index) != nil)
}

type nowNode struct {
	id   int64
	orig interpreter.InterpretableV2
}

func (n *nowNode) ID() int64 { return n.id }

func (n *nowNode) Eval(a interpreter.Activation) ref.Val { return n.Exec(interpreter.AsFrame(a)) }

func (n *nowNode) Exec(f *interpreter.ExecutionFrame) ref.Val {
	if s := subjectOf(f); s != nil {
		return s.now
	}
	return n.orig.Exec(f)
}

// Time arithmetic on int64 nanoseconds. Timestamps are offsets from timeBase;
// every leaf and every intermediate result is kept within ±timeBound, so no
// operation on two of them can overflow, and all such instants are well inside
// CEL's timestamp range: within it CEL's checked arithmetic is exact and never
// fails, so the result equals CEL's. Anything outside goes to the slow path.
const (
	timeBase  = 946684800 // 2000-01-01T00:00:00Z, Unix seconds
	timeBound = 4_000_000_000_000_000_000
	secBound  = timeBound / 1_000_000_000
)

type tkind uint8

const (
	kLeafTimestamp tkind = iota
	kLeafDuration
	kSub // a - b
	kAdd // a + b
)

type timeExpr struct {
	kind tkind
	leaf interpreter.InterpretableV2
	a, b *timeExpr
}

func (t *timeExpr) eval(f *interpreter.ExecutionFrame) (int64, bool) {
	switch t.kind {
	case kLeafTimestamp:
		ts, ok := t.leaf.Exec(f).(types.Timestamp)
		if !ok {
			return 0, false
		}
		sec := ts.Unix() - timeBase
		if sec > secBound || sec < -secBound {
			return 0, false
		}
		return sec*1_000_000_000 + int64(ts.Nanosecond()), true
	case kLeafDuration:
		d, ok := t.leaf.Exec(f).(types.Duration)
		if !ok || d.Duration > timeBound || d.Duration < -timeBound {
			return 0, false
		}
		return int64(d.Duration), true
	}
	a, ok := t.a.eval(f)
	if !ok {
		return 0, false
	}
	b, ok := t.b.eval(f)
	if !ok {
		return 0, false
	}
	r := a + b
	if t.kind == kSub {
		r = a - b
	}
	if r > timeBound || r < -timeBound {
		return 0, false
	}
	return r, true
}

// timeArith recognises the arithmetic overloads the fast path computes.
func timeArith(i interpreter.InterpretableV2) *timeExpr {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok {
		return nil
	}
	var ka, kb, k tkind
	switch call.OverloadID() {
	case overloads.SubtractTimestampTimestamp:
		ka, kb, k = kLeafTimestamp, kLeafTimestamp, kSub
	case overloads.SubtractTimestampDuration:
		ka, kb, k = kLeafTimestamp, kLeafDuration, kSub
	case overloads.AddTimestampDuration:
		ka, kb, k = kLeafTimestamp, kLeafDuration, kAdd
	case overloads.AddDurationTimestamp:
		ka, kb, k = kLeafDuration, kLeafTimestamp, kAdd
	case overloads.SubtractDurationDuration:
		ka, kb, k = kLeafDuration, kLeafDuration, kSub
	case overloads.AddDurationDuration:
		ka, kb, k = kLeafDuration, kLeafDuration, kAdd
	default:
		return nil
	}
	args := call.Args()
	if len(args) != 2 {
		return nil
	}
	return &timeExpr{kind: k, a: timeOperand(args[0], ka), b: timeOperand(args[1], kb)}
}

func timeOperand(i interpreter.InterpretableV2, leaf tkind) *timeExpr {
	if t := timeArith(i); t != nil {
		return t
	}
	return &timeExpr{kind: leaf, leaf: i}
}

type cmpOp uint8

const (
	opLess cmpOp = iota
	opLessEq
	opGreater
	opGreaterEq
)

// fuseTimeCompare returns a fused node for a timestamp or duration comparison
// with arithmetic on at least one side, or nil.
func fuseTimeCompare(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	var op cmpOp
	var leaf tkind
	switch call.OverloadID() {
	case overloads.LessTimestamp:
		op, leaf = opLess, kLeafTimestamp
	case overloads.LessEqualsTimestamp:
		op, leaf = opLessEq, kLeafTimestamp
	case overloads.GreaterTimestamp:
		op, leaf = opGreater, kLeafTimestamp
	case overloads.GreaterEqualsTimestamp:
		op, leaf = opGreaterEq, kLeafTimestamp
	case overloads.LessDuration:
		op, leaf = opLess, kLeafDuration
	case overloads.LessEqualsDuration:
		op, leaf = opLessEq, kLeafDuration
	case overloads.GreaterDuration:
		op, leaf = opGreater, kLeafDuration
	case overloads.GreaterEqualsDuration:
		op, leaf = opGreaterEq, kLeafDuration
	default:
		return nil
	}
	args := call.Args()
	if len(args) != 2 {
		return nil
	}
	l, r := timeArith(args[0]), timeArith(args[1])
	if l == nil && r == nil {
		return nil // no arithmetic: CEL's comparison does not allocate
	}
	if l == nil {
		l = &timeExpr{kind: leaf, leaf: args[0]}
	}
	if r == nil {
		r = &timeExpr{kind: leaf, leaf: args[1]}
	}
	return &timeCompare{id: call.ID(), op: op, l: l, r: r, orig: call}
}

type timeCompare struct {
	id   int64
	op   cmpOp
	l, r *timeExpr
	orig interpreter.InterpretableV2
}

func (n *timeCompare) ID() int64 { return n.id }

func (n *timeCompare) Eval(a interpreter.Activation) ref.Val { return n.Exec(interpreter.AsFrame(a)) }

func (n *timeCompare) Exec(f *interpreter.ExecutionFrame) ref.Val {
	l, ok := n.l.eval(f)
	if !ok {
		return n.orig.Exec(f)
	}
	r, ok := n.r.eval(f)
	if !ok {
		return n.orig.Exec(f)
	}
	switch n.op {
	case opLess:
		return types.Bool(l < r)
	case opLessEq:
		return types.Bool(l <= r)
	case opGreater:
		return types.Bool(l > r)
	default:
		return types.Bool(l >= r)
	}
}

// fieldCompare is `field <op> constant` (or `constant <op> field`) for string
// and int constants: the commonest clause of a rule.
type fieldCompare struct {
	id        int64
	op        string // a CEL operator: _==_, _!=_, _<_, _<=_, _>_, _>=_
	field     *fieldNode
	fieldLeft bool
	str       types.String
	num       types.Int
	isStr     bool
	orig      interpreter.InterpretableV2
}

func fuseFieldCompare(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	switch call.Function() {
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
	default:
		return nil
	}
	args := call.Args()
	if len(args) != 2 {
		return nil
	}
	n := &fieldCompare{id: call.ID(), op: call.Function(), orig: call}
	var c interpreter.InterpretableConst
	if f, ok := args[0].(*fieldNode); ok {
		n.field, n.fieldLeft = f, true
		c, _ = args[1].(interpreter.InterpretableConst)
	} else if f, ok := args[1].(*fieldNode); ok {
		n.field = f
		c, _ = args[0].(interpreter.InterpretableConst)
	}
	if n.field == nil || c == nil {
		return nil
	}
	switch v := c.Value().(type) {
	case types.String:
		n.str, n.isStr = v, true
	case types.Int:
		n.num = v
	default:
		return nil
	}
	return n
}

func (n *fieldCompare) ID() int64 { return n.id }

func (n *fieldCompare) Eval(a interpreter.Activation) ref.Val { return n.Exec(interpreter.AsFrame(a)) }

// Exec returns what CEL returns: the field's error when it is absent (the
// constant cannot fail), the comparison of two values of the same type, and
// CEL's own evaluation for anything else (another type at run time).
func (n *fieldCompare) Exec(f *interpreter.ExecutionFrame) ref.Val {
	s := subjectOf(f)
	if s == nil {
		return n.orig.Exec(f)
	}
	var v ref.Val
	if n.field.account {
		v = s.accountVal(n.field.index)
	} else {
		v = s.userVal(n.field.index)
	}
	if v == nil {
		return n.field.missing
	}
	var c int
	if n.isStr {
		x, ok := v.(types.String)
		if !ok {
			return n.orig.Exec(f)
		}
		switch n.op {
		case operators.Equals:
			return types.Bool(x == n.str)
		case operators.NotEquals:
			return types.Bool(x != n.str)
		}
		switch {
		case x < n.str:
			c = -1
		case x > n.str:
			c = 1
		}
	} else {
		x, ok := v.(types.Int)
		if !ok {
			return n.orig.Exec(f)
		}
		switch {
		case x < n.num:
			c = -1
		case x > n.num:
			c = 1
		}
	}
	if !n.fieldLeft {
		c = -c
	}
	switch n.op {
	case operators.Equals:
		return types.Bool(c == 0)
	case operators.NotEquals:
		return types.Bool(c != 0)
	case operators.Less:
		return types.Bool(c < 0)
	case operators.LessEquals:
		return types.Bool(c <= 0)
	case operators.Greater:
		return types.Bool(c > 0)
	default:
		return types.Bool(c >= 0)
	}
}
