package rule

import (
	"fmt"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// Evaluator evaluates one Program over the profiles of one view. It reuses its
// activation across profiles and is not safe for concurrent use: use one per
// goroutine.
type Evaluator struct {
	p    *Program
	s    subject
	view *profile.View
	// frame is reused across profiles when the program allows it: getting one
	// from CEL's pool and returning it costs as much as a simple rule.
	frame *interpreter.ExecutionFrame
	// tabs are the rule's single-attribute clauses evaluated per distinct value
	// (table.go); complete: every clause has one.
	tabs     []table
	complete bool
	// sparse: built for a few profiles looked up by id (NewSparseEvaluator),
	// so nothing builds the view's dense snapshot.
	sparse bool
}

// subject is the activation: the current profile and the view's resolved fields.
type subject struct {
	user   profile.User
	uf, af profile.Fields
	now    ref.Val
	ur     userRef
	ar     accountRef
	// probing: attribute reads return probeVal for the probed attribute (and
	// nothing for any other), to tabulate a clause per distinct value.
	probing      bool
	probeAccount bool
	probeIndex   int
	probeVal     ref.Val
}

type userRef struct{ s *subject }
type accountRef struct{ s *subject }

// NewEvaluator binds p to a view (resolving attribute names once) and a time.
// It builds the view's dense columns of the attributes p reads: made for
// evaluating every profile (View.Users).
func (p *Program) NewEvaluator(v *profile.View, now time.Time) *Evaluator {
	return p.newEvaluator(v, now, false)
}

// NewSparseEvaluator is NewEvaluator for a few profiles looked up by id
// (View.User): it builds no column, so its cost is in proportion to the
// profiles it evaluates, not to the view. A change-driven evaluation of the
// k profiles a sync changed uses it.
func (p *Program) NewSparseEvaluator(v *profile.View, now time.Time) *Evaluator {
	return p.newEvaluator(v, now, true)
}

func (p *Program) newEvaluator(v *profile.View, now time.Time, sparse bool) *Evaluator {
	e := &Evaluator{p: p, view: v, sparse: sparse}
	userDense, accountDense := p.userDense, p.accountDense
	if sparse {
		userDense, accountDense = make([]bool, len(userDense)), make([]bool, len(accountDense))
	}
	e.s.uf = v.UserFieldsDense(p.userNames, userDense)
	e.s.af = v.AccountFieldsDense(p.accountNames, accountDense)
	e.s.now = types.Timestamp{Time: now}
	e.s.ur.s = &e.s
	e.s.ar.s = &e.s
	if p.reuseFrame {
		if f, err := interpreter.NewExecutionFrame(&e.s); err == nil {
			e.frame = f
		}
	}
	e.tabs, e.complete = e.tables()
	return e
}

// Eval evaluates the expression for one profile.
func (e *Evaluator) Eval(u profile.User) (ref.Val, error) {
	e.s.user = u
	var in any = &e.s
	if e.frame != nil {
		in = e.frame
	}
	out, _, err := e.p.prg.Eval(in)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Match evaluates a rule for one profile. An error (an attribute the profile
// lacks, a cost overrun) means the profile is not a member.
func (e *Evaluator) Match(u profile.User) (bool, error) {
	if e.tabs != nil && u.Indexed() {
		idx, acct := u.Positions()
		full := false
		for i := range e.tabs {
			t := &e.tabs[i]
			var code uint16
			if !t.account {
				code = t.codes[idx]
			} else if acct >= 0 {
				code = t.codes[acct]
			}
			switch t.entries[code] {
			case entryFalse:
				return false, nil
			case entryOther:
				full = true
			}
		}
		if !full && e.complete {
			return true, nil
		}
	}
	out, err := e.Eval(u)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the rule returned %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// ResolveName implements interpreter.Activation.
func (s *subject) ResolveName(name string) (any, bool) {
	switch name {
	case "user":
		return &s.ur, true
	case "account":
		return &s.ar, true
	case "now":
		return s.now, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (s *subject) Parent() interpreter.Activation { return nil }

func (s *subject) userField(i int) (any, bool) {
	v := s.userVal(i)
	return v, v != nil
}

func (s *subject) accountField(i int) (any, bool) {
	v := s.accountVal(i)
	return v, v != nil
}

// userVal is the current profile's i-th user attribute, nil when absent.
func (s *subject) userVal(i int) ref.Val {
	if s.probing {
		return s.probe(false, i)
	}
	return s.user.Val(&s.uf, i)
}

// accountVal is the current profile's account's i-th attribute, nil when
// absent or when the profile has no account.
func (s *subject) accountVal(i int) ref.Val {
	if s.probing {
		return s.probe(true, i)
	}
	return s.user.AccountVal(&s.af, i)
}

func (s *subject) probe(account bool, i int) ref.Val {
	if account == s.probeAccount && i == s.probeIndex {
		return s.probeVal
	}
	return nil
}
