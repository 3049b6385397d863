package rule

import (
	"context"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types/ref"
)

// WithContext returns a copy of p whose evaluations fail once ctx is done
// (cancelled or past its deadline), with ctx's cause, so that a loop over
// every profile (the preview's) ends right after the cancellation, each
// remaining profile counted as an evaluation error; the caller tells a
// cancelled run from a real one by ctx.Err(). Profiles that the rule's clause
// tables decide without CEL (table.go) are not interrupted: they cost a table
// lookup each. Like p, the copy is safe for concurrent use.
func (p *Program) WithContext(ctx context.Context) *Program {
	q := *p
	q.prg = &cancellable{Program: p.prg, ctx: ctx}
	return &q
}

// cancellable is a CEL program that stops evaluating once its context is
// done. Err of a context is an atomic load: checked on every evaluation.
type cancellable struct {
	cel.Program
	ctx context.Context
}

func (c *cancellable) Eval(input any) (ref.Val, *cel.EvalDetails, error) {
	if c.ctx.Err() != nil {
		return nil, nil, fmt.Errorf("evaluation stopped: %w", context.Cause(c.ctx))
	}
	return c.Program.Eval(input)
}
