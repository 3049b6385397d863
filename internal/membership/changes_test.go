package membership

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"
)

var created int

// applyPlan is what the API holds after a plan's writes (a created slice
// gets a new name, as GenerateName gives).
func applyPlan(existing []Slice, p Plan) []Slice {
	byName := map[string]Slice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.Update {
		byName[s.Name] = s
	}
	for _, name := range p.Delete {
		delete(byName, name)
	}
	for _, s := range p.Create {
		created++
		s.Name = fmt.Sprintf("s-%05d", created)
		byName[s.Name] = s
	}
	out := slices.Collect(maps.Values(byName))
	SortSlices(out)
	return out
}

// TestPlanChangesEqualsFullPlan: for random stored slices and random new
// verdicts of some users, the change-driven plan gives the membership, the
// entries and exits, and the member count of Diff and PlanSlices over every
// user, and writes only slices that hold a changed user or take entries.
func TestPlanChangesEqualsFullPlan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	now := t0.Add(3*time.Hour + 700*time.Millisecond)
	for iter := range 500 {
		max := 1 + r.IntN(8)
		users := 5 + r.IntN(60)
		desired := map[string]Member{}
		for range users / 2 {
			uid := fmt.Sprintf("u%03d", r.IntN(users))
			desired[uid] = Member{UserID: uid, AccountID: fmt.Sprint("a", r.IntN(3)), EnteredAt: t0.Add(time.Duration(r.IntN(5)) * time.Hour)}
		}
		existing := applyPlan(nil, PlanSlices(nil, desired, max))
		// Churn some slices the way earlier passes would.
		if r.IntN(2) == 0 && len(existing) > 1 && len(existing[0].Members) > 1 {
			existing[0].Members = existing[0].Members[:len(existing[0].Members)/2]
		}
		stored := Members(existing)
		verdicts := map[string]Verdict{}
		matching := map[string]string{}
		for uid, m := range stored {
			matching[uid] = m.AccountID
		}
		for range 1 + r.IntN(10) {
			uid := fmt.Sprintf("u%03d", r.IntN(users+5))
			v := Verdict{Match: r.IntN(2) == 0, AccountID: fmt.Sprint("a", r.IntN(3))}
			verdicts[uid] = v
			delete(matching, uid)
			if v.Match {
				matching[uid] = v.AccountID
			}
		}
		wantMembers, wantChange := Diff(stored, matching, now)
		got := PlanChanges(SliceList(existing), verdicts, now, max)
		after := Members(applyPlan(existing, got.Plan))
		if !maps.EqualFunc(after, wantMembers, same) {
			t.Fatalf("iter %d: membership after the change-driven plan\n%v\nwant\n%v", iter, after, wantMembers)
		}
		if !reflect.DeepEqual(got.Change, wantChange) && len(got.Change.Entered)+len(got.Change.Exited)+len(wantChange.Entered)+len(wantChange.Exited) > 0 {
			t.Fatalf("iter %d: change %+v, want %+v", iter, got.Change, wantChange)
		}
		if got.Members != len(wantMembers) {
			t.Fatalf("iter %d: %d members, want %d", iter, got.Members, len(wantMembers))
		}
		for _, s := range append(append([]Slice(nil), got.Plan.Update...), sliceNamed(existing, got.Plan.Delete)...) {
			touched := false
			for _, m := range sliceNamed(existing, []string{s.Name})[0].Members {
				if _, ok := verdicts[m.UserID]; ok {
					touched = true
				}
			}
			if !touched && len(got.Change.Entered) == 0 {
				t.Fatalf("iter %d: slice %s written though no changed user is in it and nobody entered", iter, s.Name)
			}
		}
		for _, s := range applyPlan(existing, got.Plan) {
			if len(s.Members) > max || len(s.Members) == 0 {
				t.Fatalf("iter %d: slice %s holds %d members (max %d)", iter, s.Name, len(s.Members), max)
			}
		}
		if len(verdicts) > 0 && PlanChanges(SliceList(applyPlan(existing, got.Plan)), verdicts, now, max).Plan.Writes() != 0 {
			t.Fatalf("iter %d: the same verdicts again must write nothing", iter)
		}
	}
}

func sliceNamed(all []Slice, names []string) []Slice {
	var out []Slice
	for _, n := range names {
		for _, s := range all {
			if s.Name == n {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestStepsNeverDropAStayingMember: after any prefix of a plan's writes made
// in the order of Steps, every member who stays is in some slice with its
// entry time, also when a smaller sliceSize moves members to new slices
// (issue 13 row 12: a Playbook pass between two writes saw false exits).
func TestStepsNeverDropAStayingMember(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 300 {
		desired := map[string]Member{}
		for i := range 5 + r.IntN(40) {
			uid := fmt.Sprintf("u%03d", i)
			desired[uid] = Member{UserID: uid, AccountID: "a", EnteredAt: t0.Add(time.Duration(r.IntN(3)) * time.Hour)}
		}
		big := 2 + r.IntN(10)
		existing := applyPlan(nil, PlanSlices(nil, desired, big))
		next := maps.Clone(desired)
		for range r.IntN(5) {
			delete(next, fmt.Sprintf("u%03d", r.IntN(45)))
		}
		small := 1 + r.IntN(big) // a smaller (or equal) sliceSize moves members
		plan := PlanSlices(existing, next, small)
		state := existing
		for k, step := range plan.Steps() {
			var one Plan
			switch {
			case step.Delete:
				one.Delete = []string{step.Slice.Name}
			case step.Slice.Name == "":
				one.Create = []Slice{step.Slice}
			default:
				one.Update = []Slice{step.Slice}
			}
			state = applyPlan(state, one)
			held := Members(state)
			for uid, m := range next {
				if old, stays := desired[uid]; stays {
					if got, ok := held[uid]; !ok || !got.EnteredAt.Equal(old.EnteredAt) || !got.EnteredAt.Equal(m.EnteredAt) {
						t.Fatalf("iter %d: after write %d of %d, staying member %s is %+v (present %v)", iter, k+1, plan.Writes(), uid, got, ok)
					}
				}
			}
		}
		if !maps.EqualFunc(Members(state), next, same) {
			t.Fatalf("iter %d: final membership differs", iter)
		}
	}
}

// Binary search finds exactly what a walk over every member finds, in
// slices a plan wrote (sorted by user id), a user in two slices included.
func TestSearchEqualsWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for iter := range 300 {
		users := 1 + r.IntN(200)
		desired := map[string]Member{}
		for range users {
			uid := fmt.Sprintf("u%04d", r.IntN(users*2))
			desired[uid] = Member{UserID: uid, AccountID: "a", EnteredAt: t0}
		}
		existing := applyPlan(nil, PlanSlices(nil, desired, 1+r.IntN(20)))
		if len(existing) > 1 && len(existing[0].Members) > 0 {
			// A copy left in a second slice by an interrupted write.
			dup := existing[0].Members[0]
			existing[1].Members = append(existing[1].Members, dup)
			sortMembers(existing[1].Members)
		}
		verdicts := map[string]Verdict{}
		for range 1 + r.IntN(8) {
			verdicts[fmt.Sprintf("u%04d", r.IntN(users*2+3))] = Verdict{}
		}
		walked, searched := map[string][]Located{}, map[string][]Located{}
		walk(SliceList(existing), verdicts, walked)
		search(SliceList(existing), verdicts, searched)
		for _, locs := range searched {
			sort.Slice(locs, func(a, b int) bool { return locs[a].Slice < locs[b].Slice })
		}
		if !reflect.DeepEqual(walked, searched) {
			t.Fatalf("iter %d: walk found %v, search %v", iter, walked, searched)
		}
	}
}

// A slice someone else wrote out of order is rewritten sorted by the next
// full plan, so that binary search holds afterwards.
func TestFullPlanSortsAnUnsortedSlice(t *testing.T) {
	existing := []Slice{{Name: "s1", Members: []Member{mem("u2"), mem("u1")}}}
	plan := PlanSlices(existing, map[string]Member{"u1": mem("u1"), "u2": mem("u2")}, 10)
	if len(plan.Update) != 1 || plan.Update[0].Members[0].UserID != "u1" {
		t.Fatalf("plan %+v: the unsorted slice is not rewritten sorted", plan)
	}
}
