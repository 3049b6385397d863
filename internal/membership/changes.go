package membership

import (
	"iter"
	"maps"
	"slices"
	"sort"
	"time"
)

// Verdict is where a re-evaluated user stands now: a member (with the account
// it joins through) or not.
type Verdict struct {
	Match     bool
	AccountID string
}

// Located is a stored member and the index of the slice holding it.
type Located struct {
	Member
	Slice int
}

// Stored is a read-only view of a persona's slices as the cache holds them,
// so a change-driven pass reads the members it needs without copying every
// member of every slice.
type Stored interface {
	// Len is the number of slices.
	Len() int
	// Name is the i-th slice's name.
	Name(i int) string
	// Size is the number of members of the i-th slice.
	Size(i int) int
	// At is the j-th member of the i-th slice.
	At(i, j int) Member
}

// Outcome is what a change-driven pass changes: the writes, the entries and
// exits, and the number of members afterwards.
type Outcome struct {
	Plan    Plan
	Change  Change
	Members int
}

// PlanChanges is PlanSlices for a pass that re-evaluated only some users:
// verdicts holds their new state, every other stored member stays as it is.
// It reads each stored member once (to find the changed users and count the
// members) and writes only the slices the change touches, placing entries as
// PlanSlices does: first into slices already being written, then into the
// clean slice with the least room that fits them all, then into new slices.
// Given the same stored members and verdicts it plans the same membership as
// Diff and PlanSlices over every user would.
func PlanChanges(stored Stored, verdicts map[string]Verdict, now time.Time, maxPerSlice int) Outcome {
	if maxPerSlice < 1 {
		maxPerSlice = 1
	}
	now = now.UTC().Truncate(time.Second) // as Diff: what metav1.Time stores
	found, total := locate(stored, verdicts)
	var out Outcome
	edits := map[int]map[string]*Member{} // slice → changed user → new member (nil: removed)
	edit := func(slice int, uid string, m *Member) {
		if edits[slice] == nil {
			edits[slice] = map[string]*Member{}
		}
		edits[slice][uid] = m
	}
	var entered []Member
	for _, uid := range slices.Sorted(maps.Keys(verdicts)) {
		v := verdicts[uid]
		locs, isStored := found[uid]
		switch {
		case isStored && !v.Match:
			out.Change.Exited = append(out.Change.Exited, earliest(locs).Member)
			for _, l := range locs {
				edit(l.Slice, uid, nil)
			}
		case isStored:
			// Stays: the first record keeps its entry time (as Members does);
			// a copy left in another slice by an interrupted write goes.
			keep := earliest(locs)
			m := keep.Member
			if m.AccountID != v.AccountID {
				m.AccountID = v.AccountID
				edit(keep.Slice, uid, &m)
			}
			for _, l := range locs {
				if l != keep {
					edit(l.Slice, uid, nil)
				}
			}
		case v.Match:
			m := Member{UserID: uid, AccountID: v.AccountID, EnteredAt: now}
			out.Change.Entered = append(out.Change.Entered, m)
			entered = append(entered, m)
		}
		total -= len(locs)
		if v.Match {
			total++
		}
	}
	out.Members = total
	out.Plan = placeChanges(stored, edits, entered, maxPerSlice)
	return out
}

// locate finds the changed users among the stored members, and counts the
// stored members. A slice's members are sorted by user id (every plan writes
// them so, and a slice someone else wrote is rewritten sorted by the full
// pass that follows: keep), so a few verdicts are found by binary search in
// each slice; a pass after a single change then costs a few comparisons per
// slice instead of a map lookup per stored member. Many verdicts are found
// by one walk over every member.
func locate(stored Stored, verdicts map[string]Verdict) (map[string][]Located, int) {
	found := make(map[string][]Located, len(verdicts))
	total := 0
	for i := range stored.Len() {
		total += stored.Size(i)
	}
	if len(verdicts)*stored.Len()*searchCost >= total {
		walk(stored, verdicts, found)
	} else {
		search(stored, verdicts, found)
	}
	return found, total
}

// walk locates the verdicts' users by visiting every stored member.
func walk(stored Stored, verdicts map[string]Verdict, found map[string][]Located) {
	for i := range stored.Len() {
		for j := range stored.Size(i) {
			if m := stored.At(i, j); hasVerdict(verdicts, m.UserID) {
				found[m.UserID] = append(found[m.UserID], Located{Member: m, Slice: i})
			}
		}
	}
}

// search locates the verdicts' users by binary search in each slice.
func search(stored Stored, verdicts map[string]Verdict, found map[string][]Located) {
	for uid := range verdicts {
		for i := range stored.Len() {
			n := stored.Size(i)
			j := sort.Search(n, func(j int) bool { return stored.At(i, j).UserID >= uid })
			if j < n {
				if m := stored.At(i, j); m.UserID == uid {
					found[uid] = append(found[uid], Located{Member: m, Slice: i})
				}
			}
		}
	}
}

// searchCost is about what finding one user in one slice by binary search
// costs, in member visits of a walk (log2 of a slice of 1000, and the calls).
const searchCost = 16

func hasVerdict(verdicts map[string]Verdict, uid string) bool {
	_, ok := verdicts[uid]
	return ok
}

func earliest(locs []Located) Located {
	best := locs[0]
	for _, l := range locs[1:] {
		if l.EnteredAt.Before(best.EnteredAt) {
			best = l
		}
	}
	return best
}

// placeChanges turns the edits of touched slices and the entries into writes.
func placeChanges(stored Stored, edits map[int]map[string]*Member, entered []Member, maxPerSlice int) Plan {
	var plan Plan
	// Slices in name order, as PlanSlices walks them.
	order := make([]int, stored.Len())
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return stored.Name(order[a]) < stored.Name(order[b]) })
	work := map[int][]Member{}
	for _, i := range order {
		if e := edits[i]; e != nil {
			work[i] = applyEdits(stored, i, e)
		}
	}
	pending := entered
	for _, i := range order {
		ms, dirty := work[i]
		if !dirty || len(ms) == 0 || len(pending) == 0 {
			continue
		}
		n := min(maxPerSlice-len(ms), len(pending))
		if n > 0 {
			work[i] = append(ms, pending[:n]...)
			pending = pending[n:]
		}
	}
	if len(pending) > 0 {
		best, bestRoom := -1, maxPerSlice+1
		for _, i := range order {
			if _, dirty := work[i]; dirty {
				continue
			}
			if room := maxPerSlice - stored.Size(i); room >= len(pending) && room < bestRoom {
				best, bestRoom = i, room
			}
		}
		if best >= 0 {
			work[best] = append(applyEdits(stored, best, nil), pending...)
			pending = nil
		}
	}
	for len(pending) > 0 {
		n := min(maxPerSlice, len(pending))
		plan.Create = append(plan.Create, Slice{Members: append([]Member(nil), pending[:n]...)})
		pending = pending[n:]
	}
	for _, i := range order {
		ms, dirty := work[i]
		switch {
		case !dirty:
		case len(ms) == 0:
			plan.Delete = append(plan.Delete, stored.Name(i))
		default:
			sortMembers(ms)
			plan.Update = append(plan.Update, Slice{Name: stored.Name(i), Members: ms})
		}
	}
	return plan
}

// applyEdits copies a slice's members with the edits applied.
func applyEdits(stored Stored, i int, e map[string]*Member) []Member {
	n := stored.Size(i)
	out := make([]Member, 0, n)
	for j := range n {
		m := stored.At(i, j)
		if next, ok := e[m.UserID]; ok {
			if next == nil {
				continue
			}
			m = *next
		}
		out = append(out, m)
	}
	return out
}

// SliceList is Stored over slices already converted.
type SliceList []Slice

func (s SliceList) Len() int           { return len(s) }
func (s SliceList) Name(i int) string  { return s[i].Name }
func (s SliceList) Size(i int) int     { return len(s[i].Members) }
func (s SliceList) At(i, j int) Member { return s[i].Members[j] }

// Smallest returns the n smallest ids, sorted: one pass that keeps the
// smallest seen so far (a persona's status shows a sample of its members
// without sorting them all at each evaluation).
func Smallest(ids iter.Seq[string], n int) []string {
	var out []string
	for id := range ids {
		if len(out) == n && (n == 0 || id >= out[n-1]) {
			continue
		}
		i := sort.SearchStrings(out, id)
		if i < len(out) && out[i] == id {
			continue
		}
		if len(out) < n {
			out = append(out, "")
		}
		copy(out[i+1:], out[i:])
		out[i] = id
	}
	return out
}

// IDsAfter yields the member ids after a change-driven pass: the stored ones
// that did not exit, then those who entered (a user stored twice is yielded
// twice).
func IDsAfter(stored Stored, ch Change) iter.Seq[string] {
	return func(yield func(string) bool) {
		exited := make(map[string]bool, len(ch.Exited))
		for _, m := range ch.Exited {
			exited[m.UserID] = true
		}
		for i := range stored.Len() {
			for j := range stored.Size(i) {
				if id := stored.At(i, j).UserID; !exited[id] && !yield(id) {
					return
				}
			}
		}
		for _, m := range ch.Entered {
			if !yield(m.UserID) {
				return
			}
		}
	}
}
