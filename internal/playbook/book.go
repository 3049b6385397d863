package playbook

import (
	"sort"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// MemberSlice is one PersonaMembership slice as a Book reads it. Members is
// the cache's own array, read only: the informer replaces an object on each
// change and never edits one in place, so the Book keeps the array it saw
// without copying it.
type MemberSlice struct {
	Persona, Name string
	// Version changes whenever the slice does (its resourceVersion).
	Version string
	Members []v1alpha1.MembershipEntry
}

// RunSlice is one PlaybookProgress slice of the ledger as a Book reads it
// (Runs read only, as MemberSlice's Members).
type RunSlice struct {
	Name, Version string
	Runs          []v1alpha1.PlaybookRun
}

// Book is one playbook's planning state between passes: the membership and
// ledger slices as last seen, the live users (those a pass acts on) with their
// membership and run, and, of the quiet users, only the counts and States of
// their runs. A quiet user is one a pass does nothing for but count a
// finished run (see quiet): at scale nearly every user, a member from before
// the playbook existed or one whose entry already ran.
//
// NewBook (and Compute) classify every user; Sync classifies again only the
// users whose entry or run changed in the slices that changed since, so a
// pass after a few entries costs the changed slices, a search for each
// changed user and the live users, not the persona's size. Plan is the same
// for both: one decision.
type Book struct {
	spec     Spec
	members  []memberSlice // sorted by persona and name
	ledger   []runSlice    // sorted by name: the first holds a user's record
	mAt      map[sliceKey]int
	rAt      map[sliceKey]int
	live     map[string]entry
	quiet    Counts           // Succeeded and Failed of the quiet users
	states   map[string]State // every user's, as of the last Plan
	unshown  bool             // states changed since MarkPublished
	size     int              // members and runs in the slices
	searched int              // users classified again by the last Sync
}

type memberSlice struct {
	MemberSlice
	span
}

type runSlice struct {
	RunSlice
	span
}

// span is what a book knows of a slice's user ids, checked once per version:
// whether they are sorted (as the controllers write them; by hand, maybe
// not), and the first and last, so a search skips the slices that cannot
// hold a user.
type span struct {
	sorted      bool
	first, last string
}

func spanOf(n int, id func(int) string) span {
	sp := span{sorted: true}
	for j := 1; j < n && sp.sorted; j++ {
		sp.sorted = id(j-1) <= id(j)
	}
	if sp.sorted && n > 0 {
		sp.first, sp.last = id(0), id(n-1)
	}
	return sp
}

// find returns the positions of id u among n ids: none if the span cannot
// hold it, else by binary search where they are sorted, else by a walk.
func (sp span) find(n int, id func(int) string, u string) []int {
	var at []int
	if !sp.sorted {
		for j := range n {
			if id(j) == u {
				at = append(at, j)
			}
		}
		return at
	}
	if n == 0 || u < sp.first || u > sp.last {
		return nil
	}
	for j := sort.Search(n, func(j int) bool { return id(j) >= u }); j < n && id(j) == u; j++ {
		at = append(at, j)
	}
	return at
}

// entry is a user as a pass sees them: their membership (as dedupe chooses)
// and their recorded run.
type entry struct {
	member   Member
	inside   bool
	run      v1alpha1.PlaybookRun
	recorded bool
}

// NewBook classifies every member and run of the slices: a full pass.
func NewBook(spec Spec, members []MemberSlice, ledger []RunSlice) *Book {
	b := &Book{spec: spec}
	b.remember(members, ledger, nil)
	all := make([]Member, 0, b.size)
	for _, s := range b.members {
		for _, m := range s.Members {
			all = append(all, memberOf(s.Persona, m))
		}
	}
	slices := make([]LedgerSlice, len(b.ledger))
	for i, s := range b.ledger {
		slices[i] = LedgerSlice{Name: s.Name, Runs: s.Runs}
	}
	b.reset(dedupe(all), Runs(slices))
	return b
}

// reset classifies every user from scratch.
func (b *Book) reset(members map[string]Member, runs map[string]v1alpha1.PlaybookRun) {
	b.live, b.quiet, b.unshown = map[string]entry{}, Counts{}, true
	b.states = make(map[string]State, len(runs))
	for u, m := range members {
		r, ok := runs[u]
		b.add(u, entry{member: m, inside: true, run: r, recorded: ok})
	}
	for u, r := range runs {
		if _, ok := members[u]; !ok {
			b.add(u, entry{run: r, recorded: true})
		}
	}
}

// Sync brings the book to the slices as they are now, classifying again only
// the users whose entry or run differs in a slice whose version changed. It
// reports false, changing nothing, when so many users changed that searching
// each would cost more than a full pass: the caller builds a NewBook then.
func (b *Book) Sync(members []MemberSlice, ledger []RunSlice) bool {
	users := map[string]struct{}{}
	mChanged, mSame := changedSlices(memberSlices, len(b.members), func(i int) MemberSlice { return b.members[i].MemberSlice },
		b.mAt, members, users)
	rChanged, rSame := changedSlices(runSlices, len(b.ledger), func(i int) RunSlice { return b.ledger[i].RunSlice },
		b.rAt, ledger, users)
	b.searched = 0
	if len(users) == 0 {
		return true
	}
	if len(users)*(len(members)+len(ledger))*searchCost > b.size+len(members)+len(ledger) {
		return false
	}
	before := make(map[string]entry, len(users))
	for u := range users {
		before[u] = b.lookup(u)
	}
	if mSame && rSame {
		b.replace(mChanged, rChanged)
	} else {
		b.remember(members, ledger, b)
	}
	for u, e := range before {
		b.drop(u, e)
		b.add(u, b.lookup(u))
	}
	b.searched = len(users)
	return true
}

// replace puts the changed slices in place of the ones they change: the
// same slices, new versions.
func (b *Book) replace(members map[int]MemberSlice, ledger map[int]RunSlice) {
	for i, s := range members {
		b.size += len(s.Members) - len(b.members[i].Members)
		b.members[i] = memberSlice{MemberSlice: s, span: spanOf(len(s.Members), func(j int) string { return s.Members[j].UserID })}
	}
	for i, s := range ledger {
		b.size += len(s.Runs) - len(b.ledger[i].Runs)
		b.ledger[i] = runSlice{RunSlice: s, span: spanOf(len(s.Runs), func(j int) string { return s.Runs[j].UserID })}
	}
}

// Searched is how many users the last Sync classified again.
func (b *Book) Searched() int { return b.searched }

// Spec is the spec the book plans for.
func (b *Book) Spec() Spec { return b.spec }

// Live is how many users a pass acts on.
func (b *Book) Live() int { return len(b.live) }

// searchCost is about what finding one user in one slice by binary search
// costs, in items of a full pass (as membership's). A variable so that a
// test can make every Sync search.
var searchCost = 16

// Plan decides one pass over the live users, and adds the quiet users' counts
// and States. Its States is the book's own map: read only, valid until the
// next Sync.
func (b *Book) Plan(jobs map[string]Job, limits Limits, now time.Time) Plan {
	in := Input{Spec: b.spec, Runs: make(map[string]v1alpha1.PlaybookRun, len(b.live)), Jobs: jobs, Limits: limits, Now: now}
	for u, e := range b.live {
		if e.inside {
			in.Members = append(in.Members, e.member)
		}
		if e.recorded {
			in.Runs[u] = e.run
		}
	}
	p := decide(in)
	p.Counts.Succeeded += b.quiet.Succeeded
	p.Counts.Failed += b.quiet.Failed
	for u := range b.live {
		st, ok := p.States[u]
		b.setState(u, st, ok)
	}
	p.States = b.states
	return p
}

// Unpublished reports whether the States changed since MarkPublished.
func (b *Book) Unpublished() bool { return b.unshown }

// MarkPublished records that the current States were published.
func (b *Book) MarkPublished() { b.unshown = false }

// quiet reports whether a pass does nothing for the user but count their run
// and show its State, whatever the time: no Job to watch, no step to start,
// no entry (or exit) that may call for a run now or after a cooldown.
func (s Spec) quiet(e entry) bool {
	if e.recorded {
		switch e.run.Phase {
		case v1alpha1.RunRunning, v1alpha1.RunPending:
			return false
		case v1alpha1.RunArmed:
			// An Exit playbook acts when the armed entry is no longer inside.
			return !s.OnExit || (e.inside && sameEntry(e.run, e.member))
		case v1alpha1.RunSucceeded, v1alpha1.RunFailed:
		default:
			return true // no pass acts on a phase it does not know
		}
	}
	if !e.inside || (!s.IncludeExisting && e.member.EnteredAt.Before(s.Created)) {
		return true
	}
	// A finished run reruns for a new entry unless reentryPolicy is Once
	// (Reruns); a member without a run is a new entry.
	return e.recorded && (s.Once || sameEntry(e.run, e.member))
}

func sameEntry(r v1alpha1.PlaybookRun, m Member) bool {
	return r.Persona == m.Persona && r.EnteredAt.Time.Equal(m.EnteredAt)
}

// add counts a user in, as live or quiet; drop counts them out.
func (b *Book) add(u string, e entry) {
	if !b.spec.quiet(e) {
		b.live[u] = e
		return
	}
	b.count(e, 1)
	// A quiet run's State does not change with time (only unfinished runs
	// have a deadline); a live user's comes from the next Plan.
	shown := e.recorded && e.run.Phase != v1alpha1.RunArmed
	b.setState(u, stateOf(b.spec, e.run, e.run.Phase, time.Time{}), shown)
}

func (b *Book) drop(u string, e entry) {
	if _, ok := b.live[u]; ok {
		delete(b.live, u)
	} else {
		b.count(e, -1)
	}
}

func (b *Book) count(e entry, n int64) {
	if !e.recorded {
		return
	}
	switch e.run.Phase {
	case v1alpha1.RunSucceeded:
		b.quiet.Succeeded += n
	case v1alpha1.RunFailed:
		b.quiet.Failed += n
	}
}

func (b *Book) setState(u string, st State, ok bool) {
	old, had := b.states[u]
	switch {
	case !ok && had:
		delete(b.states, u)
	case ok && (!had || old != st):
		b.states[u] = st
	default:
		return
	}
	b.unshown = true
}

// lookup finds a user in the slices by binary search: their best membership
// over every persona (dedupe's choice) and the ledger's record (the first
// slice by name, as Runs reads).
func (b *Book) lookup(u string) entry {
	var e entry
	for i := range b.members {
		s := &b.members[i]
		for _, j := range s.find(len(s.Members), func(j int) string { return s.Members[j].UserID }, u) {
			if m := memberOf(s.Persona, s.Members[j]); !e.inside || better(m, e.member) {
				e.member, e.inside = m, true
			}
		}
	}
	_, e.run, e.recorded = b.record(u)
	return e
}

// record finds a user's run in the ledger: the first slice by name that
// holds one, as Runs reads.
func (b *Book) record(u string) (slice string, run v1alpha1.PlaybookRun, ok bool) {
	for i := range b.ledger {
		s := &b.ledger[i]
		if at := s.find(len(s.Runs), func(j int) string { return s.Runs[j].UserID }, u); len(at) > 0 {
			return s.Name, s.Runs[at[0]], true
		}
	}
	return "", v1alpha1.PlaybookRun{}, false
}

// Holders names the ledger slice that holds each of the users' records (for
// PlanLedgerAt); users without one are left out.
func (b *Book) Holders(users map[string]v1alpha1.PlaybookRun) map[string]string {
	out := make(map[string]string, len(users))
	for u := range users {
		if name, _, ok := b.record(u); ok {
			out[u] = name
		}
	}
	return out
}

func memberOf(persona string, m v1alpha1.MembershipEntry) Member {
	return Member{Persona: persona, UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time}
}

// remember keeps the slices, in order and indexed, with their spans: prev's
// for a slice whose version did not change.
func (b *Book) remember(members []MemberSlice, ledger []RunSlice, prev *Book) {
	ms := make([]memberSlice, len(members))
	b.size = 0
	for i, s := range members {
		ms[i] = memberSlice{MemberSlice: s}
		if j, ok := prev.memberAt(s.Persona, s.Name); ok && prev.members[j].Version == s.Version {
			ms[i].span = prev.members[j].span
		} else {
			ms[i].span = spanOf(len(s.Members), func(j int) string { return s.Members[j].UserID })
		}
		b.size += len(s.Members)
	}
	rs := make([]runSlice, len(ledger))
	for i, s := range ledger {
		rs[i] = runSlice{RunSlice: s}
		if j, ok := prev.runsAt(s.Name); ok && prev.ledger[j].Version == s.Version {
			rs[i].span = prev.ledger[j].span
		} else {
			rs[i].span = spanOf(len(s.Runs), func(j int) string { return s.Runs[j].UserID })
		}
		b.size += len(s.Runs)
	}
	sort.Slice(ms, func(i, j int) bool {
		return ms[i].Persona < ms[j].Persona || (ms[i].Persona == ms[j].Persona && ms[i].Name < ms[j].Name)
	})
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	b.members, b.ledger = ms, rs
	b.mAt = make(map[sliceKey]int, len(ms))
	for i, s := range ms {
		b.mAt[sliceKey{s.Persona, s.Name}] = i
	}
	b.rAt = make(map[sliceKey]int, len(rs))
	for i, s := range rs {
		b.rAt[sliceKey{name: s.Name}] = i
	}
}

func (b *Book) memberAt(persona, name string) (int, bool) {
	if b == nil {
		return 0, false
	}
	i, ok := b.mAt[sliceKey{persona, name}]
	return i, ok
}

func (b *Book) runsAt(name string) (int, bool) {
	if b == nil {
		return 0, false
	}
	i, ok := b.rAt[sliceKey{name: name}]
	return i, ok
}
