package sqlrule

import (
	"fmt"
	"unicode"

	"github.com/google/cel-go/common/ast"
)

// Refusal says why a rule is not translated, and where: the sub-expression
// (its 1-based line and column, as CEL reports them, its rune offset and its
// text) whose SQL could not give exactly what CEL gives.
type Refusal struct {
	Line, Column int
	Offset       int
	Expr         string
	Reason       string
}

func (r *Refusal) Error() string {
	if r.Expr == "" {
		return r.Reason
	}
	return fmt.Sprintf("%d:%d: %s: %s", r.Line, r.Column, r.Expr, r.Reason)
}

// refuse builds the Refusal of a node.
func (t *translator) refuse(e ast.Expr, format string, args ...any) error {
	r := &Refusal{Reason: fmt.Sprintf(format, args...)}
	info := t.checked.SourceInfo()
	lo, hi, ok := t.span(e)
	if !ok {
		return r
	}
	loc := info.GetLocationByOffset(lo)
	r.Line, r.Column, r.Offset = loc.Line(), loc.Column()+1, int(lo)
	if int(hi) <= len(t.runes) && lo < hi {
		r.Expr = string(t.runes[lo:hi])
	}
	return r
}

// span is the rune range of a node's whole subtree. CEL records where each
// node starts (a call at its parenthesis, a select at its dot), so the span
// runs from the first start to the end of the token at the last one, and on
// over the parentheses and brackets left open.
func (t *translator) span(e ast.Expr) (lo, hi int32, ok bool) {
	info := t.checked.SourceInfo()
	last := int32(0)
	ast.PreOrderVisit(e, ast.NewExprVisitor(func(x ast.Expr) {
		r, found := info.GetOffsetRange(x.ID())
		if !found {
			return
		}
		if !ok || r.Start < lo {
			lo = r.Start
		}
		if !ok || r.Start > last {
			last = r.Start
		}
		ok = true
	}))
	if !ok || int(last) >= len(t.runes) {
		return lo, lo, ok
	}
	// A global call starts at its parenthesis: include its name.
	if t.runes[lo] == '(' {
		for lo > 0 && isNameRune(t.runes[lo-1]) {
			lo--
		}
	}
	hi = t.tokenEnd(last)
	depth := 0
	for _, r := range t.runes[lo:hi] {
		switch r {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		}
	}
	for ; depth > 0 && int(hi) < len(t.runes); hi++ {
		switch t.runes[hi] {
		case ')', ']':
			depth--
		case ' ', '\t', '\n', '\r':
		default:
			return lo, hi, ok
		}
	}
	return lo, hi, ok
}

// tokenEnd is the end of the token starting at i: a quoted string, a name,
// a number or a field selection, or one rune.
func (t *translator) tokenEnd(i int32) int32 {
	r := t.runes
	if q := r[i]; q == '"' || q == '\'' {
		j := i + 1
		for ; int(j) < len(r) && r[j] != q; j++ {
			if r[j] == '\\' {
				j++
			}
		}
		return min(j+1, int32(len(r)))
	}
	j := i
	for int(j) < len(r) && isNameRune(r[j]) {
		j++
	}
	if j == i {
		j++
	}
	return j
}

func isNameRune(r rune) bool {
	return r == '.' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
