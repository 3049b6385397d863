// Package persona holds the Persona controller's decisions, free of Kubernetes
// I/O: compiling a persona against a namespace's schema, evaluating membership and
// insights over the profile store, and what status says about it.
package persona

import (
	"context"
	"fmt"
	"time"

	"github.com/bits-and-blooms/bitset"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/insight"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// Compiled is a persona's rule and insights compiled against one schema.
type Compiled struct {
	Rule     *rule.Program
	Insights []CompiledInsight
}

// CompiledInsight is one insight's program.
type CompiledInsight struct {
	Spec    v1alpha1.InsightSpec
	Program *rule.Program
}

// Compile compiles a persona's rule and insights against a schema. Errors name
// the field and carry CEL's position.
func Compile(spec *v1alpha1.PersonaSpec, s rule.Schema) (*Compiled, error) {
	c, problems := Check(spec, s)
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return c, nil
}

// Problem is one expression of a persona's spec that does not compile.
type Problem struct {
	// Path is the field, e.g. spec.insights[0].expression.
	Path *field.Path
	// Value is the expression as written.
	Value string
	// Label names the field in messages: spec.rule, or spec.insights[0] (name).
	Label string
	Err   error
}

func (p Problem) Error() string { return p.Label + ": " + p.Err.Error() }

// Check compiles every expression of a persona and returns each one that does
// not compile: the admission webhook reports them all, the controller the
// first. Sum, Average, Min and Max insights must be numbers.
func Check(spec *v1alpha1.PersonaSpec, s rule.Schema) (*Compiled, []Problem) {
	var problems []Problem
	p, err := rule.Compile(spec.Rule, s)
	if err != nil {
		problems = append(problems, Problem{Path: field.NewPath("spec", "rule"), Value: spec.Rule, Label: "spec.rule", Err: err})
	}
	c := &Compiled{Rule: p}
	for i, in := range spec.Insights {
		compile := rule.CompileValue
		if in.Type != v1alpha1.InsightTopValues {
			compile = rule.CompileNumber
		}
		ip, err := compile(in.Expression, s)
		if err != nil {
			problems = append(problems, Problem{
				Path:  field.NewPath("spec", "insights").Index(i).Child("expression"),
				Value: in.Expression, Label: fmt.Sprintf("spec.insights[%d] (%s)", i, in.Name), Err: err,
			})
			continue
		}
		c.Insights = append(c.Insights, CompiledInsight{Spec: in, Program: ip})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// WithContext returns a copy of c whose rule and insights stop evaluating once
// ctx is done (rule.Program.WithContext): an evaluation past its deadline ends
// soon after, and the caller, seeing ctx.Err(), must not apply its result
// (every remaining profile would read as an error, a mass exit).
func (c *Compiled) WithContext(ctx context.Context) *Compiled {
	out := &Compiled{Rule: c.Rule.WithContext(ctx), Insights: make([]CompiledInsight, len(c.Insights))}
	for i, in := range c.Insights {
		out.Insights[i] = CompiledInsight{Spec: in.Spec, Program: in.Program.WithContext(ctx)}
	}
	return out
}

// ReadsUser reports whether the rule or an insight reads the user attribute.
func (c *Compiled) ReadsUser(name string) bool {
	if c.Rule.ReadsUser(name) {
		return true
	}
	for _, in := range c.Insights {
		if in.Program.ReadsUser(name) {
			return true
		}
	}
	return false
}

// ReadsAccount reports whether the rule or an insight reads the account attribute.
func (c *Compiled) ReadsAccount(name string) bool {
	if c.Rule.ReadsAccount(name) {
		return true
	}
	for _, in := range c.Insights {
		if in.Program.ReadsAccount(name) {
			return true
		}
	}
	return false
}

// Evaluation is the result of evaluating a persona over a view.
type Evaluation struct {
	// Matching maps each matching user id to its account id (a full
	// evaluation, by Evaluate; EvaluateMembers leaves it nil).
	Matching map[string]string
	// Members marks the members by position (profile.User.Pos): every
	// matching profile after a full evaluation, the remembered members with
	// the re-evaluated ones updated after a change-driven one (nil when there
	// is no remembered bitset). A million profiles take 125 KB, where a map of
	// their ids takes tens of megabytes to build and collect every pass.
	Members *bitset.BitSet
	// Verdicts are the re-evaluated users' new states (a change-driven
	// evaluation, EvaluateChanged): every other stored member stays.
	Verdicts map[string]membership.Verdict
	// Errors counts profiles whose evaluation failed (non-members).
	Errors   int64
	Insights []v1alpha1.InsightResult
	Duration time.Duration
	// FullDuration is what the last evaluation of every profile took: this
	// one's Duration when it was one (Evaluate), the remembered one for a
	// change-driven evaluation (EvaluateChanged).
	FullDuration time.Duration
	// Timing is how time alone changes the rule (see rule.Analysis).
	Timing rule.Analysis
	// NextChange is the earliest instant after now at which time alone may
	// change membership: a comparison of the rule with `now` flips for some
	// profile. Zero when the rule does not read now, when no such comparison
	// flips later, or when Timing is not Exact (membership may then change at
	// any time, and only the refresh interval catches it).
	NextChange time.Time
}

// Evaluate runs the rule over every profile of the view, then the insights over
// the members, and lists the members by id (Matching).
func Evaluate(v *profile.View, c *Compiled, now time.Time, clock func() time.Time) Evaluation {
	ev := EvaluateMembers(v, c, now, clock)
	ev.MatchingOf(v)
	return ev
}

// MatchingOf lists ev's members by id, with their account ids, in
// ev.Matching: the form a diff against every stored member reads.
func (ev *Evaluation) MatchingOf(v *profile.View) {
	ev.Matching = make(map[string]string, ev.Members.Count())
	for i, ok := ev.Members.NextSet(0); ok; i, ok = ev.Members.NextSet(i + 1) {
		if u, found := v.UserAt(int32(i)); found {
			ev.Matching[u.ID()] = u.AccountID()
		}
	}
}

// EvaluateMembers is Evaluate with the members marked by position only
// (Members), for a pass that plans its writes from the positions that
// changed (FullVerdicts).
func EvaluateMembers(v *profile.View, c *Compiled, now time.Time, clock func() time.Time) Evaluation {
	start := clock()
	ev := Evaluation{Members: bitset.New(uint(v.Positions()))}
	e := c.Rule.NewEvaluator(v, now)
	insightEvals := make([]*rule.Evaluator, len(c.Insights))
	accs := make([]*insight.Accumulator, len(c.Insights))
	for i, in := range c.Insights {
		insightEvals[i] = in.Program.NewEvaluator(v, now)
		accs[i] = insight.ForSpec(in.Spec)
	}
	for u := range v.Users() {
		ok, err := e.Match(u)
		if err != nil {
			ev.Errors++
			continue
		}
		if !ok {
			continue
		}
		ev.Members.Set(uint(u.Pos()))
		for i, ie := range insightEvals {
			val, err := ie.Eval(u)
			if err != nil {
				accs[i].AddError(err)
				continue
			}
			accs[i].Add(val)
		}
	}
	for _, a := range accs {
		ev.Insights = append(ev.Insights, a.Result())
	}
	ev.Timing = c.Rule.Analysis()
	if ev.Timing.UsesNow && ev.Timing.Exact {
		if next, ok := e.NextChange(); ok {
			ev.NextChange = next
		}
	}
	ev.Duration = clock().Sub(start)
	ev.FullDuration = ev.Duration
	return ev
}

// MinRequeue is the soonest a time-driven re-evaluation is scheduled, so a
// crossing that is due (or a clock that disagrees with the queue's) never
// makes a hot loop.
const MinRequeue = time.Second

// NextEvaluation is when the controller re-evaluates for a change of
// membership by time alone: NextChange rounded up to the second (status shows
// seconds, and by then the comparison has flipped); zero when there is none.
func NextEvaluation(ev Evaluation) time.Time {
	if ev.NextChange.IsZero() {
		return time.Time{}
	}
	t := ev.NextChange.Truncate(time.Second)
	if t.Before(ev.NextChange) {
		t = t.Add(time.Second)
	}
	return t
}

// RequeueAfter is when to evaluate again: at the next change by time alone
// when it comes before the refresh interval, else after the refresh interval.
// A time-driven re-evaluation (a full one) comes no sooner than MinRequeue,
// nor than ten times what a full evaluation takes: a rule over fine-grained
// timestamps (a crossing every second) then costs at most about a tenth of a
// core, and the crossings that fall in between are handled together. fullDue,
// when not zero, is when a full evaluation is due to refresh insights after
// change-driven ones (FullDue).
func RequeueAfter(ev Evaluation, now time.Time, refresh time.Duration, fullDue time.Time) time.Duration {
	after := refresh
	if next := NextEvaluation(ev); !next.IsZero() {
		if until := next.Sub(now); until < refresh {
			after = min(max(until, MinRequeue, 10*ev.FullDuration), refresh)
		}
	}
	if !fullDue.IsZero() {
		after = min(after, max(fullDue.Sub(now), MinRequeue))
	}
	return after
}
