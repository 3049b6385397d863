package rule

import (
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
)

// Clause tables. Most rules are a conjunction of clauses that each read one
// attribute: `account.tier == "enterprise" && user.role == "decision_maker" &&
// user.nps <= 6`. When that attribute's column is dictionary-coded (it has few
// distinct values), such a clause is evaluated once per distinct value when an
// Evaluator is made, with CEL itself, and each profile then costs one table
// lookup per clause. CEL's && is false as soon as any operand is false, whatever
// the others are (errors included), so a profile with a false entry is not a
// member; a profile whose entries are all true is a member when every clause
// has a table; any other profile (an error entry, clauses without a table) is
// evaluated by CEL in full. Results are exactly CEL's.

// term is a top-level && operand of a rule that reads exactly one attribute.
type term struct {
	id      int64
	account bool
	index   int
	node    interpreter.InterpretableV2 // its planned node, set while planning
}

// findTerms returns the single-attribute operands of the rule's top-level &&
// (the rule itself when it is not a conjunction), and whether every operand is
// one.
func findTerms(root ast.Expr, sel selects) ([]*term, bool) {
	operands := []ast.Expr{root}
	if root.Kind() == ast.CallKind && root.AsCall().FunctionName() == operators.LogicalAnd {
		operands = root.AsCall().Args()
	}
	var out []*term
	for _, op := range operands {
		if t := singleAttribute(op, sel); t != nil {
			out = append(out, t)
		}
	}
	return out, len(out) == len(operands)
}

// singleAttribute returns op as a term when all it reads of user and account
// is one attribute (through selects the fast path recognises).
func singleAttribute(op ast.Expr, sel selects) *term {
	var idents, selectsSeen int
	var field *fieldSel
	ok := true
	visit(op, func(e ast.Expr) {
		switch e.Kind() {
		case ast.IdentKind:
			if n := e.AsIdent(); n == "user" || n == "account" {
				idents++
			}
		case ast.SelectKind:
			f, found := sel.fields[e.ID()]
			if !found {
				return
			}
			selectsSeen++
			if field != nil && (field.account != f.account || field.index != f.index) {
				ok = false
			}
			field = &f
		case ast.ComprehensionKind:
			ok = false
		}
	})
	if !ok || field == nil || idents != selectsSeen {
		return nil
	}
	return &term{id: op.ID(), account: field.account, index: field.index}
}

// Table entries.
const (
	entryFalse int8 = iota
	entryTrue
	entryOther // an error or a non-bool: evaluate the profile in full
)

// table is one term's result per dictionary code of its attribute.
type table struct {
	account bool
	codes   []uint16 // the attribute's column, by profile or account position
	entries []int8   // by code
}

// maxTable bounds the distinct values a term is tabulated over.
const maxTable = 1 << 16

// tables evaluates each term once per distinct value of its attribute's column.
// It needs the evaluator's reusable frame (programs without comprehensions).
func (e *Evaluator) tables() (out []table, complete bool) {
	if e.frame == nil || len(e.p.terms) == 0 {
		return nil, false
	}
	complete = e.p.allTerms
	for _, t := range e.p.terms {
		f := &e.s.uf
		if t.account {
			f = &e.s.af
		}
		dict := f.Dict(t.index)
		if t.node == nil || dict == nil || len(dict) > maxTable {
			complete = false
			continue
		}
		tab := table{account: t.account, codes: f.Codes(t.index), entries: make([]int8, len(dict))}
		e.s.probing, e.s.probeAccount, e.s.probeIndex = true, t.account, t.index
		for code, v := range dict {
			e.s.probeVal = v
			tab.entries[code] = entryOther
			if b, ok := t.node.Exec(e.frame).(types.Bool); ok {
				tab.entries[code] = entryFalse
				if b {
					tab.entries[code] = entryTrue
				}
			}
		}
		e.s.probing, e.s.probeVal = false, nil
		out = append(out, tab)
	}
	if len(out) == 0 {
		return nil, false
	}
	return out, complete
}
