package persona

import (
	"maps"
	"time"

	"github.com/bits-and-blooms/bitset"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// Change-driven evaluation. A sync that changes k of a million profiles must
// not cost every persona a million evaluations: the Persona controller keeps a
// Memory of each persona's last evaluation, asks the store what changed since
// (profile.View.Changes), and re-evaluates only those profiles, starting from
// the members its slices hold. A full evaluation still runs when the memory
// cannot be trusted (first evaluation, a new spec, schema or source
// selection, slices written by someone else), when the store cannot say what
// changed, when a time-based threshold is crossed (the crossing may concern
// any profile), when so much changed that a full pass is cheaper, and
// periodically to refresh what only a full pass computes: the insights and
// the count of profiles whose evaluation fails.

// Memory is what the controller keeps of a persona's last evaluation that was
// stored in slices.
type Memory struct {
	// Key identifies what the evaluation was made for: spec generation,
	// schema and sources (see MemoryKey).
	Key string
	// Generation is the store generation the evaluation read.
	Generation uint64
	// Slices are the persona's slices (name → generation) after its writes:
	// slices that differ were written by someone else.
	Slices map[string]int64
	// From the last full evaluation.
	Insights     []v1alpha1.InsightResult
	Errors       int64
	Timing       rule.Analysis
	FullAt       time.Time
	FullDuration time.Duration
	// NextChange is the earliest time-based change known (see Evaluation).
	NextChange time.Time
	// Members is the membership the slices hold, by position at Generation
	// (Evaluation.Members); nil when unknown.
	Members *bitset.BitSet
}

// Evaluation modes, as metrics and logs name them.
const (
	ModeFull    = "full"
	ModeChanged = "changed"
	// ModeDatabase: evaluated inside the DataSources' database.
	ModeDatabase = "database"
)

// Full-evaluation reasons.
const (
	FullFirst    = "first evaluation"
	FullSpec     = "spec, schema or sources changed"
	FullSlices   = "slices changed by someone else"
	FullPartial  = "some sources are not ready"
	FullStore    = "the store cannot tell what changed"
	FullTime     = "a time-based threshold was crossed"
	FullMany     = "more than a tenth of the profiles changed"
	FullInsights = "insights refresh"
	FullRefresh  = "refresh interval"
)

// MinFullInterval is the least time between two full evaluations that refresh
// insights while changes keep coming; a full pass also waits ten times what
// the last one took, so refreshing costs at most a tenth of a core.
const MinFullInterval = 30 * time.Second

// PlanInput is what the controller knows before evaluating.
type PlanInput struct {
	Key     string
	Slices  map[string]int64
	Partial bool
	Now     time.Time
	Refresh time.Duration
	Changes profile.Changes
	// Profiles is the number of profiles in the view.
	Profiles int
	// FullInterval is the least time between full evaluations that refresh
	// insights while changes keep coming (MinFullInterval, or longer).
	FullInterval time.Duration
}

// FullReason says why the next evaluation must visit every profile, or ""
// when re-evaluating the changed ones is enough.
func FullReason(m *Memory, in PlanInput) string {
	switch {
	case m == nil:
		return FullFirst
	case m.Key != in.Key:
		return FullSpec
	case !maps.Equal(m.Slices, in.Slices):
		return FullSlices
	case in.Partial:
		return FullPartial
	case in.Changes.All:
		return FullStore
	case !m.NextChange.IsZero() && !in.Now.Before(m.NextChange) && !in.Now.Before(m.FullAt.Add(10*m.FullDuration)):
		// A crossing waits, like the time-driven requeue (RequeueAfter), until
		// ten full passes' time has gone by: over fine-grained timestamps one
		// is due every second, and every change would otherwise be a full pass.
		return FullTime
	case tooMany(in.Changes.Len(), in.Profiles):
		return FullMany
	case in.Refresh > 0 && in.Now.Sub(m.FullAt) >= in.Refresh:
		return FullRefresh
	case len(m.Insights) > 0 && in.Changes.Len() > 0 && !in.Now.Before(FullDue(m, in.FullInterval)):
		return FullInsights
	}
	return ""
}

// tooMany says whether re-evaluating changed profiles costs more than a full
// evaluation: when more than a tenth of them changed (a sparse evaluation
// looks each profile up by id, several times slower per profile than a pass
// over the dense snapshot). Below 64 either is cheap.
func tooMany(changed, profiles int) bool { return changed > max(profiles/10, 64) }

// FullDue is when a full evaluation may next run to refresh insights and
// error counts after changes: interval (at least MinFullInterval) after the
// last one, and no sooner than ten times what it took.
func FullDue(m *Memory, interval time.Duration) time.Time {
	return m.FullAt.Add(max(MinFullInterval, interval, 10*m.FullDuration))
}

// EvaluateChanged re-evaluates the profiles the changes reached (users whose
// rows changed and the users of changed accounts) and returns their new
// state as the evaluation's Verdicts (Matching is nil: every other stored
// member stays, membership.PlanChanges). Insights, error counts and timing
// are the last full evaluation's. It returns false when the changes reach
// more than a tenth of the profiles: a full evaluation is then cheaper.
func EvaluateChanged(v *profile.View, c *Compiled, m *Memory, changes profile.Changes,
	now time.Time, clock func() time.Time) (Evaluation, bool) {
	start := clock()
	ids := changes.Users
	if len(changes.Accounts) > 0 {
		ids = append(append([]string(nil), ids...), v.UsersOfAccounts(changes.Accounts)...)
	}
	if tooMany(len(ids), v.UsersKnown()) {
		return Evaluation{}, false
	}
	ev := Evaluation{Verdicts: make(map[string]membership.Verdict, len(ids)), Errors: m.Errors, Insights: m.Insights,
		Timing: m.Timing, FullDuration: m.FullDuration}
	e := c.Rule.NewSparseEvaluator(v, now)
	users := make([]profile.User, 0, len(ids))
	for _, id := range ids {
		u, ok := v.User(id)
		if !ok {
			ev.Verdicts[id] = membership.Verdict{} // gone: no longer a profile
			continue
		}
		users = append(users, u)
		if ok, err := e.Match(u); err == nil && ok {
			ev.Verdicts[id] = membership.Verdict{Match: true, AccountID: u.AccountID()}
		} else {
			ev.Verdicts[id] = membership.Verdict{}
		}
	}
	ev.Members = updateMembers(v, m.Members, changes.Vacated(), ev.Verdicts)
	ev.NextChange = m.NextChange
	if ev.Timing.UsesNow && ev.Timing.Exact {
		if next, ok := e.NextChangeAmong(users); ok && (ev.NextChange.IsZero() || next.Before(ev.NextChange)) {
			ev.NextChange = next
		}
	}
	ev.Duration = clock().Sub(start)
	return ev, true
}

// updateMembers is the remembered members bitset after a change-driven
// pass: the freed positions cleared (their users are among the verdicts, by
// id), then each re-evaluated user's position set to its verdict. Nil when
// nothing was remembered.
func updateMembers(v *profile.View, members *bitset.BitSet, vacated []int32, verdicts map[string]membership.Verdict) *bitset.BitSet {
	if members == nil {
		return nil
	}
	out := members.Clone()
	for _, p := range vacated {
		out.Clear(uint(p))
	}
	for id, vd := range verdicts {
		if p, ok := v.Position(id); ok {
			out.SetTo(uint(p), vd.Match)
		}
	}
	return out
}

// FullVerdicts turns a full evaluation (EvaluateMembers) into verdicts for
// only the users whose membership may differ from what the slices hold, so
// that its writes are planned like a change-driven pass's
// (membership.PlanChanges) instead of by diffing every stored member against
// every matching profile. Those users are the profiles at the positions where
// the remembered bitset and the evaluation's differ, and the users the store
// changed since the memory's generation: a position can change hands only
// when its user leaves the store, and both the leaving and the arriving user
// are among the changes. It returns false when the memory does not hold the
// stored membership for this evaluation (no bitset, another spec or
// selection, slices written by someone else, a partial selection) or the
// store cannot say what changed: the caller then diffs every member.
func FullVerdicts(m *Memory, ev Evaluation, v *profile.View, in PlanInput) (map[string]membership.Verdict, bool) {
	if m == nil || m.Members == nil || ev.Members == nil || m.Key != in.Key || in.Partial || in.Changes.All ||
		!maps.Equal(m.Slices, in.Slices) {
		return nil, false
	}
	verdicts := make(map[string]membership.Verdict, len(in.Changes.Users))
	add := func(u profile.User) {
		if ev.Members.Test(uint(u.Pos())) {
			verdicts[u.ID()] = membership.Verdict{Match: true, AccountID: u.AccountID()}
		} else {
			verdicts[u.ID()] = membership.Verdict{}
		}
	}
	diff := m.Members.SymmetricDifference(ev.Members)
	for i, ok := diff.NextSet(0); ok; i, ok = diff.NextSet(i + 1) {
		if u, found := v.UserAt(int32(i)); found {
			add(u)
		}
	}
	for _, id := range in.Changes.Users {
		if u, found := v.User(id); found {
			add(u)
		} else {
			verdicts[id] = membership.Verdict{} // gone, or no longer a profile
		}
	}
	return verdicts, true
}

// Remember is the memory of an evaluation that was stored in slices (now
// named with these generations) for key, after reading store generation gen.
// A change-driven evaluation keeps the last full one's insights and times.
func Remember(prev *Memory, ev Evaluation, full bool, key string, gen uint64, slices map[string]int64, now time.Time) *Memory {
	m := &Memory{Key: key, Generation: gen, Slices: slices, NextChange: ev.NextChange,
		Insights: ev.Insights, Errors: ev.Errors, Timing: ev.Timing, Members: ev.Members}
	if full || prev == nil {
		m.FullAt, m.FullDuration = now, ev.Duration
	} else {
		m.FullAt, m.FullDuration = prev.FullAt, prev.FullDuration
	}
	return m
}
