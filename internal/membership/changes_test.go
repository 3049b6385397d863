package membership

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
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
