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
	p *Program
	s subject
}

// subject is the activation: the current profile and the view's resolved fields.
type subject struct {
	user        profile.User
	account     profile.Account
	hasAccount  bool
	accountRead bool
	uf, af      profile.Fields
	now         ref.Val
	ur          userRef
	ar          accountRef
}

type userRef struct{ s *subject }
type accountRef struct{ s *subject }

// NewEvaluator binds p to a view (resolving attribute names once) and a time.
func (p *Program) NewEvaluator(v *profile.View, now time.Time) *Evaluator {
	e := &Evaluator{p: p}
	e.s.uf = v.UserFields(p.userNames)
	e.s.af = v.AccountFields(p.accountNames)
	e.s.now = types.Timestamp{Time: now}
	e.s.ur.s = &e.s
	e.s.ar.s = &e.s
	return e
}

// Eval evaluates the expression for one profile.
func (e *Evaluator) Eval(u profile.User) (ref.Val, error) {
	e.s.user = u
	e.s.accountRead = false
	out, _, err := e.p.prg.Eval(&e.s)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Match evaluates a rule for one profile. An error (an attribute the profile
// lacks, a cost overrun) means the profile is not a member.
func (e *Evaluator) Match(u profile.User) (bool, error) {
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

func (s *subject) userField(i int) (any, bool) { return s.user.Field(&s.uf, i) }

func (s *subject) accountField(i int) (any, bool) {
	if !s.accountRead {
		s.account, s.hasAccount = s.user.Account()
		s.accountRead = true
	}
	if !s.hasAccount {
		return nil, false
	}
	return s.account.Field(&s.af, i)
}
