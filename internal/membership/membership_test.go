package membership

import (
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func mem(uid string) Member { return Member{UserID: uid, AccountID: "a", EnteredAt: t0} }

func TestDiff(t *testing.T) {
	stored := map[string]Member{"u1": mem("u1"), "u2": mem("u2")}
	later := t0.Add(time.Hour + 500*time.Millisecond)
	desired, ch := Diff(stored, map[string]string{"u2": "b", "u3": "c"}, later)
	if len(ch.Entered) != 1 || ch.Entered[0].UserID != "u3" || !ch.Entered[0].EnteredAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("entered = %+v", ch.Entered)
	}
	if len(ch.Exited) != 1 || ch.Exited[0].UserID != "u1" {
		t.Fatalf("exited = %+v", ch.Exited)
	}
	if d := desired["u2"]; d.AccountID != "b" || !d.EnteredAt.Equal(t0) {
		t.Fatalf("staying member = %+v: keeps enteredAt, takes the new account", d)
	}
	if _, ch := Diff(desired, map[string]string{"u2": "b", "u3": "c"}, later); len(ch.Entered)+len(ch.Exited) != 0 {
		t.Fatalf("no-op diff = %+v", ch)
	}
}

func TestMembersKeepsEarliestDuplicate(t *testing.T) {
	early := mem("u1")
	late := Member{UserID: "u1", EnteredAt: t0.Add(time.Hour)}
	got := Members([]Slice{{Name: "a", Members: []Member{late}}, {Name: "b", Members: []Member{early}}})
	if !got["u1"].EnteredAt.Equal(t0) || len(got) != 1 {
		t.Fatalf("Members = %+v", got)
	}
}

func members(ids ...string) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = mem(id)
	}
	return out
}

func set(ids ...string) map[string]Member {
	out := map[string]Member{}
	for _, id := range ids {
		out[id] = mem(id)
	}
	return out
}

func TestPlanSlices(t *testing.T) {
	tests := []struct {
		name     string
		existing []Slice
		desired  map[string]Member
		max      int
		want     Plan
	}{
		{name: "nothing to do", existing: []Slice{{Name: "s1", Members: members("u1", "u2")}}, desired: set("u1", "u2"), max: 3, want: Plan{}},
		{name: "first write creates full slices", desired: set("u1", "u2", "u3", "u4", "u5"), max: 2,
			want: Plan{Create: []Slice{{Members: members("u1", "u2")}, {Members: members("u3", "u4")}, {Members: members("u5")}}}},
		{name: "an exit edits only its slice", existing: []Slice{{Name: "s1", Members: members("u1", "u2")}, {Name: "s2", Members: members("u3", "u4")}},
			desired: set("u1", "u2", "u3"), max: 2, want: Plan{Update: []Slice{{Name: "s2", Members: members("u3")}}}},
		{name: "a new member tops up the slice already being written", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u3", "u4")}},
			desired: set("u1", "u4", "u9"), max: 2, want: Plan{Update: []Slice{{Name: "s2", Members: members("u4", "u9")}}}},
		{name: "new members fit a clean slice", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u3", "u4")}},
			desired: set("u1", "u3", "u4", "u5"), max: 2, want: Plan{Update: []Slice{{Name: "s1", Members: members("u1", "u5")}}}},
		{name: "an emptied slice is deleted", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u3")}},
			desired: set("u3"), max: 2, want: Plan{Delete: []string{"s1"}}},
		{name: "duplicates across slices are removed", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u1", "u2")}},
			desired: set("u1", "u2"), max: 2, want: Plan{Update: []Slice{{Name: "s2", Members: members("u2")}}}},
		{name: "a smaller sliceSize moves the overflow", existing: []Slice{{Name: "s1", Members: members("u1", "u2", "u3")}},
			desired: set("u1", "u2", "u3"), max: 2, want: Plan{Create: []Slice{{Members: members("u3")}}, Update: []Slice{{Name: "s1", Members: members("u1", "u2")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanSlices(tt.existing, tt.desired, tt.max)
			if !reflect.DeepEqual(normalize(got), normalize(tt.want)) {
				t.Fatalf("plan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func normalize(p Plan) string { return fmt.Sprintf("%+v", p) }

// apply returns the slices after a plan, naming created ones.
func apply(existing []Slice, p Plan) []Slice {
	byName := map[string]Slice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, n := range p.Delete {
		delete(byName, n)
	}
	for _, s := range p.Update {
		byName[s.Name] = s
	}
	for i, s := range p.Create {
		s.Name = fmt.Sprintf("new-%d-%d", len(byName), i)
		byName[s.Name] = s
	}
	var out []Slice
	for _, s := range byName {
		out = append(out, s)
	}
	SortSlices(out)
	return out
}

func FuzzPlanSlices(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 0, 4, 5, 255, 1, 9}, uint8(2))
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		max := int(size%8) + 1
		// data encodes existing slices (255 starts a new slice) then, after
		// 254, the desired user ids; ids are bytes.
		var existing []Slice
		cur := Slice{Name: "s0"}
		desired := map[string]Member{}
		inDesired := false
		for _, b := range data {
			switch {
			case b == 254:
				inDesired = true
			case inDesired:
				desired[fmt.Sprint(b%40)] = mem(fmt.Sprint(b % 40))
			case b == 255:
				existing = append(existing, cur)
				cur = Slice{Name: fmt.Sprintf("s%d", len(existing))}
			default:
				cur.Members = append(cur.Members, mem(fmt.Sprint(b%40)))
			}
		}
		existing = append(existing, cur)

		plan := PlanSlices(existing, desired, max)
		after := apply(existing, plan)
		seen := map[string]int{}
		for _, s := range after {
			if len(s.Members) == 0 || len(s.Members) > max {
				t.Fatalf("slice %s has %d members (max %d)", s.Name, len(s.Members), max)
			}
			for _, m := range s.Members {
				seen[m.UserID]++
			}
		}
		for uid, n := range seen {
			if n != 1 {
				t.Fatalf("user %s is in %d slices", uid, n)
			}
			if _, ok := desired[uid]; !ok {
				t.Fatalf("user %s is stored but not desired", uid)
			}
		}
		if len(seen) != len(desired) {
			t.Fatalf("%d members stored, %d desired", len(seen), len(desired))
		}
		// A second plan over the result writes nothing.
		if again := PlanSlices(after, desired, max); again.Writes() != 0 {
			t.Fatalf("plan is not idempotent: %+v", again)
		}
	})
}

// Phases keep the plan's order between creates, updates and deletes; only
// the updates must be written one after the other.
func TestPhases(t *testing.T) {
	plan := Plan{
		Create: []Slice{{Members: []Member{mem("u1")}}, {Members: []Member{mem("u2")}}},
		Update: []Slice{{Name: "s1"}, {Name: "s2"}},
		Delete: []string{"s3"},
	}
	phases := plan.Phases()
	if len(phases) != 3 {
		t.Fatalf("%d phases, want 3", len(phases))
	}
	for i, want := range []struct {
		n       int
		ordered bool
		delete  bool
	}{{2, false, false}, {2, true, false}, {1, false, true}} {
		ph := phases[i]
		if len(ph.Steps) != want.n || ph.Ordered != want.ordered || ph.Steps[0].Delete != want.delete {
			t.Errorf("phase %d: %d steps, ordered %v, delete %v; want %+v", i, len(ph.Steps), ph.Ordered, ph.Steps[0].Delete, want)
		}
	}
	if got := phases[1].Concurrency(8); got != 1 {
		t.Errorf("updates run %d at once, want 1", got)
	}
	if got := phases[0].Concurrency(8); got != 8 {
		t.Errorf("creates run %d at once, want 8", got)
	}
	if got := (Plan{Delete: []string{"s"}}).Phases(); len(got) != 1 || !got[0].Steps[0].Delete {
		t.Errorf("a plan of one delete: %+v", got)
	}
	if got := (Plan{}).Phases(); len(got) != 0 {
		t.Errorf("an empty plan has phases %+v", got)
	}
}

func TestInternAccountsSharesEqualIDs(t *testing.T) {
	m := &v1alpha1.PersonaMembership{Members: []v1alpha1.MembershipEntry{
		{UserID: "u1", AccountID: string([]byte("acct-1"))}, {UserID: "u2", AccountID: string([]byte("acct-1"))},
		{UserID: "u3"}, {UserID: "u4", AccountID: "acct-2"}}}
	InternAccounts(m)
	a, b := m.Members[0].AccountID, m.Members[1].AccountID
	if a != "acct-1" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("equal account ids are not one string: %q %q", a, b)
	}
	if m.Members[2].AccountID != "" || m.Members[3].AccountID != "acct-2" || m.Members[0].UserID != "u1" {
		t.Errorf("members changed: %+v", m.Members)
	}
}
