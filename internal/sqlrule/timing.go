package sqlrule

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/internal/rule"
)

// NextChange translates the time analysis of a rule (rule.Crossings, the
// one the in-memory evaluator solves in rule.Evaluator.NextChange) into a
// query of the earliest instant after now at which one of the rule's
// comparisons with now flips for some profile: every crossing's terms are
// translated as the rule's sub-expressions are (NULL where CEL's value is an
// error, which gives no crossing), summed in numeric nanoseconds, and the
// earliest candidate after now is kept. It returns nil when the rule does not
// read now or its analysis is not exact (only the refresh interval catches
// its changes then). Read its one value with Instant.
func NextChange(p *rule.Program, sources []Source, d Dialect) (*Query, error) {
	if a := p.Analysis(); !a.UsesNow || !a.Exact {
		return nil, nil
	}
	m, err := newMerge(sources)
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	t := newTranslator(p, m, d)
	now := t.now()
	cands := make([]string, 0, len(p.Crossings()))
	for _, c := range p.Crossings() {
		terms := make([]string, 0, len(c.Terms))
		for _, term := range c.Terms {
			t.checked, t.runes = term.Program.Checked(), []rune(term.Program.Source())
			v, err := t.expr(t.checked.Expr())
			if err != nil {
				return nil, err
			}
			if v.kind != KindTimestamp && v.kind != KindDuration {
				return nil, t.refuse(t.checked.Expr(), "not a timestamp or a duration")
			}
			sign := "+"
			if term.Neg {
				sign = "-"
			}
			terms = append(terms, sign+" "+v.sql)
		}
		// The sides differ by Sigma·now + sum: zero at now = -Sigma·sum.
		at := "(0 " + strings.Join(terms, " ") + ")"
		if c.Sigma > 0 {
			at = "(-" + at + ")"
		}
		var whens []string
		if c.AtZero {
			whens = append(whens, fmt.Sprintf("WHEN %s > %s THEN %s", at, now, at))
		}
		if c.AtOne {
			whens = append(whens, fmt.Sprintf("WHEN %s + 1 > %s THEN %s + 1", at, now, at))
		}
		cands = append(cands, "CASE "+strings.Join(whens, " ")+" END")
	}
	if len(cands) == 0 {
		return nil, nil
	}
	// LEAST and min skip NULLs: a profile or a comparison without a crossing.
	sql, err := t.assemble(fmt.Sprintf("min(LEAST(%s))::text", strings.Join(cands, ", ")), "")
	if err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	if len(sql) > MaxSQLBytes {
		return nil, &Refusal{Reason: fmt.Sprintf("the next change's SQL would exceed %d bytes", MaxSQLBytes)}
	}
	return &Query{SQL: sql, Settings: d.Settings(), args: t.args, nowArg: t.nowArg}, nil
}

var billion = big.NewInt(1e9)

// Instant reads NextChange's result: numeric nanoseconds since the Unix
// epoch as text, NULL (nil) when no crossing comes after now.
func Instant(text *string) (time.Time, bool, error) {
	if text == nil {
		return time.Time{}, false, nil
	}
	r, ok := new(big.Rat).SetString(*text)
	if !ok || !r.IsInt() {
		return time.Time{}, false, errors.New("the next change is not a whole number of nanoseconds")
	}
	sec, nsec := new(big.Int).DivMod(r.Num(), billion, new(big.Int))
	if !sec.IsInt64() {
		return time.Time{}, false, errors.New("the next change is out of range")
	}
	return time.Unix(sec.Int64(), nsec.Int64()).UTC(), true, nil
}
