package membership

import (
	"sort"
)

// Plan is the set of writes that makes the slices hold exactly the desired
// members. They are made in the order of Steps.
type Plan struct {
	// Create are new slices (Name empty: the caller generates one).
	Create []Slice
	// Update are existing slices with new contents.
	Update []Slice
	// Delete are names of slices to delete.
	Delete []string
}

// Writes is the number of API writes the plan needs.
func (p Plan) Writes() int { return len(p.Create) + len(p.Update) + len(p.Delete) }

// Step is one write of a plan: a slice to create (Name empty), to update, or
// (Delete) to delete.
type Step struct {
	Slice  Slice
	Delete bool
	// After: made only once every earlier step has been (Stream's slices
	// that release members to others); Stream's other steps are
	// independent of each other and may be made at once.
	After bool
}

// Steps is the order the plan's writes must be made in: creates first, then
// updates (those that take members before those that only lose some), then
// deletes. A member who moves (a smaller sliceSize releases
// members that new slices take) is then in two slices for a moment, never in
// none: a Playbook reading the slices between two writes must not see an
// exit that never happened, and a crash between two writes must not lose a
// member, who would enter again with a new entry time. A member found twice
// keeps the earliest entry (Members, PlanChanges), so the duplicate is
// harmless and the next pass removes it.
func (p Plan) Steps() []Step {
	out := make([]Step, 0, p.Writes())
	for _, ph := range p.Phases() {
		out = append(out, ph.Steps...)
	}
	return out
}

// Phase is a group of a plan's writes that may be made in any order, at
// once; the phases themselves must be made one after the other (Phases).
type Phase struct {
	Steps []Step
	// Ordered: the steps must be made one after the other, in order.
	Ordered bool
}

// Concurrency is how many of the phase's writes may run at once, given the
// most the caller allows.
func (p Phase) Concurrency(most int) int {
	if p.Ordered {
		return 1
	}
	return max(most, 1)
}

// Phases are Steps grouped for concurrent writing: the creates, then the
// updates in order (a slice that takes a member is written before the one
// that releases it), then the deletes. Empty phases are left out.
func (p Plan) Phases() []Phase {
	var out []Phase
	for _, ph := range []Phase{
		{Steps: stepsOf(p.Create, nil)},
		{Steps: stepsOf(p.Update, nil), Ordered: true},
		{Steps: stepsOf(nil, p.Delete)},
	} {
		if len(ph.Steps) > 0 {
			out = append(out, ph)
		}
	}
	return out
}

func stepsOf(slices []Slice, deletes []string) []Step {
	out := make([]Step, 0, len(slices)+len(deletes))
	for _, s := range slices {
		out = append(out, Step{Slice: s})
	}
	for _, name := range deletes {
		out = append(out, Step{Slice: Slice{Name: name}, Delete: true})
	}
	return out
}

// PlanSlices plans the writes from the existing slices to the desired members,
// with at most maxPerSlice members per slice:
//  1. drop members that left (or moved to another slice earlier in the list)
//     and refresh changed ones, marking those slices dirty; a slice left empty
//     is deleted;
//  2. place new members into dirty slices with room, in order;
//  3. if the rest fits into one clean slice, top that one up (one write);
//  4. otherwise create new full slices.
//
// Slices are never merged or rebalanced just for tidiness. Members inside a
// slice are kept sorted by user id so contents are deterministic.
func PlanSlices(existing []Slice, desired map[string]Member, maxPerSlice int) Plan {
	if maxPerSlice < 1 {
		maxPerSlice = 1
	}
	placed := make(map[string]bool, len(desired))
	work := make([]Slice, 0, len(existing))
	dirty := make([]bool, 0, len(existing))
	var plan Plan
	for _, s := range existing {
		kept, changed := keep(s.Members, desired, placed, maxPerSlice)
		if len(kept) == 0 {
			plan.Delete = append(plan.Delete, s.Name)
			continue
		}
		work = append(work, Slice{Name: s.Name, Members: kept})
		dirty = append(dirty, changed)
	}

	pending := unplaced(desired, placed)
	received := make([]bool, len(work))
	for i := range work {
		if !dirty[i] || len(pending) == 0 {
			continue
		}
		room := maxPerSlice - len(work[i].Members)
		n := min(room, len(pending))
		work[i].Members = append(work[i].Members, pending[:n]...)
		received[i] = n > 0
		pending = pending[n:]
	}
	if len(pending) > 0 {
		if i := bestFit(work, dirty, len(pending), maxPerSlice); i >= 0 {
			work[i].Members = append(work[i].Members, pending...)
			dirty[i], received[i] = true, true
			pending = nil
		}
	}
	for len(pending) > 0 {
		n := min(maxPerSlice, len(pending))
		s := Slice{Members: append([]Member(nil), pending[:n]...)}
		sortMembers(s.Members)
		plan.Create = append(plan.Create, s)
		pending = pending[n:]
	}
	// Slices that take members first: a member released by another slice
	// (a smaller sliceSize) is then written into its new slice before it
	// leaves the old one (see Steps).
	for _, takes := range []bool{true, false} {
		for i, s := range work {
			if dirty[i] && received[i] == takes {
				sortMembers(s.Members)
				plan.Update = append(plan.Update, s)
			}
		}
	}
	return plan
}

// keep returns the members of one slice that stay, refreshed from desired, and
// whether anything changed. Members beyond maxPerSlice (a smaller sliceSize)
// are released to be placed again.
func keep(members []Member, desired map[string]Member, placed map[string]bool, maxPerSlice int) ([]Member, bool) {
	kept := make([]Member, 0, len(members))
	changed := false
	for i, m := range members {
		if i > 0 && members[i-1].UserID >= m.UserID {
			// Out of order (written by someone else): rewritten sorted, as
			// PlanChanges finds members by binary search.
			changed = true
		}
		want, ok := desired[m.UserID]
		if !ok || placed[m.UserID] || len(kept) == maxPerSlice {
			changed = true
			continue
		}
		if !same(want, m) {
			changed = true
		}
		placed[m.UserID] = true
		kept = append(kept, want)
	}
	return kept, changed
}

func unplaced(desired map[string]Member, placed map[string]bool) []Member {
	var out []Member
	for uid, m := range desired {
		if !placed[uid] {
			out = append(out, m)
		}
	}
	sortMembers(out)
	return out
}

// bestFit is the clean slice with the least room that still fits n members,
// or -1.
func bestFit(work []Slice, dirty []bool, n, maxPerSlice int) int {
	best, bestRoom := -1, maxPerSlice+1
	for i, s := range work {
		room := maxPerSlice - len(s.Members)
		if !dirty[i] && room >= n && room < bestRoom {
			best, bestRoom = i, room
		}
	}
	return best
}

// SortSlices orders slices by name, for deterministic processing.
func SortSlices(s []Slice) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}

// same compares members; times by instant, whatever their location.
func same(a, b Member) bool {
	return a.UserID == b.UserID && a.AccountID == b.AccountID && a.EnteredAt.Equal(b.EnteredAt)
}
