package membership

import (
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// rows streams members (user id → account) in id order.
func rows(members map[string]string) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		for _, id := range slices.Sorted(maps.Keys(members)) {
			if !yield(Row{ID: id, AccountID: members[id]}, nil) {
				return
			}
		}
	}
}

// streamed runs Stream over existing slices and returns its steps.
func streamed(t *testing.T, existing []Slice, members map[string]string, now time.Time, max int) ([]Step, Streamed) {
	t.Helper()
	var steps []Step
	out, err := Stream(StreamInput{Stored: SliceList(existing), Rows: rows(members), Now: now, MaxPerSlice: max, SampleSize: 3,
		Write: func(s Step) error { steps = append(steps, s); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if out.Writes != len(steps) {
		t.Fatalf("Writes %d, %d steps", out.Writes, len(steps))
	}
	return steps, out
}

// applySteps is what the API holds after the steps (created slices named
// c-<n>).
func applySteps(existing []Slice, steps []Step) []Slice {
	byName := map[string]Slice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, st := range steps {
		switch {
		case st.Delete:
			delete(byName, st.Slice.Name)
		case st.Slice.Name == "":
			created++
			byName[fmt.Sprintf("c-%05d", created)] = Slice{Name: fmt.Sprintf("c-%05d", created), Members: st.Slice.Members}
		default:
			byName[st.Slice.Name] = st.Slice
		}
	}
	out := slices.Collect(maps.Values(byName))
	SortSlices(out)
	return out
}

func TestStream(t *testing.T) {
	later := t0.Add(time.Hour + 400*time.Millisecond)
	tests := []struct {
		name     string
		existing []Slice
		members  map[string]string
		max      int
		want     []Step
	}{
		{name: "nothing to do", existing: []Slice{{Name: "s1", Members: members("u1", "u2")}},
			members: map[string]string{"u1": "a", "u2": "a"}, max: 3},
		{name: "first pass creates full slices as entries gather",
			members: map[string]string{"u1": "a", "u2": "a", "u3": "a"}, max: 2,
			want: []Step{{Slice: Slice{Members: []Member{{"u1", "a", t0.Add(time.Hour)}, {"u2", "a", t0.Add(time.Hour)}}}},
				{Slice: Slice{Members: []Member{{"u3", "a", t0.Add(time.Hour)}}}}}},
		{name: "an exit writes its slice", existing: []Slice{{Name: "s1", Members: members("u1", "u2")}, {Name: "s2", Members: members("u3", "u4")}},
			members: map[string]string{"u1": "a", "u2": "a", "u3": "a"}, max: 2,
			want: []Step{{Slice: Slice{Name: "s2", Members: members("u3")}}}},
		{name: "an entry tops up the slice decided after it", existing: []Slice{{Name: "s1", Members: members("u1", "u3")}, {Name: "s2", Members: members("u5")}},
			members: map[string]string{"u1": "a", "u3": "a", "u4": "a", "u5": "a"}, max: 2,
			want: []Step{{Slice: Slice{Name: "s2", Members: []Member{{"u4", "a", t0.Add(time.Hour)}, mem("u5")}}}}},
		{name: "the last entries fit the clean slice with the least room", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u2", "u3")}},
			members: map[string]string{"u1": "a", "u2": "a", "u3": "a", "u9": "a"}, max: 3,
			want: []Step{{Slice: Slice{Name: "s2", Members: []Member{mem("u2"), mem("u3"), {"u9", "a", t0.Add(time.Hour)}}}}}},
		{name: "an account change rewrites the slice", existing: []Slice{{Name: "s1", Members: members("u1", "u2")}},
			members: map[string]string{"u1": "a", "u2": "b"}, max: 2,
			want: []Step{{Slice: Slice{Name: "s1", Members: []Member{mem("u1"), {"u2", "b", t0}}}}}},
		{name: "an emptied slice is deleted", existing: []Slice{{Name: "s1", Members: members("u1")}, {Name: "s2", Members: members("u3")}},
			members: map[string]string{"u3": "a"}, max: 2, want: []Step{{Slice: Slice{Name: "s1"}, Delete: true}}},
		{name: "an empty slice is deleted", existing: []Slice{{Name: "s1"}, {Name: "s2", Members: members("u3")}},
			members: map[string]string{"u3": "a"}, max: 2, want: []Step{{Slice: Slice{Name: "s1"}, Delete: true}}},
		{name: "the later copy of a member stored twice goes",
			existing: []Slice{{Name: "s1", Members: []Member{{"u1", "a", t0.Add(time.Minute)}}}, {Name: "s2", Members: members("u1", "u2")}},
			members:  map[string]string{"u1": "a", "u2": "a"}, max: 2, want: []Step{{Slice: Slice{Name: "s1"}, Delete: true}}},
		{name: "a smaller sliceSize moves the overflow before its slice is written", existing: []Slice{{Name: "s1", Members: members("u1", "u2", "u3")}},
			members: map[string]string{"u1": "a", "u2": "a", "u3": "a"}, max: 2,
			want: []Step{{Slice: Slice{Members: members("u3")}}, {Slice: Slice{Name: "s1", Members: members("u1", "u2")}, After: true}}},
		{name: "unsorted slices are read in id order", existing: []Slice{{Name: "s1", Members: members("u3", "u1")}},
			members: map[string]string{"u1": "a"}, max: 2, want: []Step{{Slice: Slice{Name: "s1", Members: members("u1")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := streamed(t, tt.existing, tt.members, later, tt.max)
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("steps =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestStreamRefusesUnorderedRows(t *testing.T) {
	for _, ids := range [][]string{{"u2", "u1"}, {"u1", "u1"}} {
		seq := func(yield func(Row, error) bool) {
			for _, id := range ids {
				if !yield(Row{ID: id}, nil) {
					return
				}
			}
		}
		writes := 0
		_, err := Stream(StreamInput{Stored: SliceList{{Name: "s1", Members: members("u9")}}, Rows: seq, Now: t0, MaxPerSlice: 5,
			Write: func(Step) error { writes++; return nil }})
		if !errors.Is(err, ErrUnordered) || writes != 0 {
			t.Fatalf("%v: err %v, %d writes; want ErrUnordered and no write", ids, err, writes)
		}
	}
}

// A stream that fails stops: the stored members after the failure do not exit.
func TestStreamErrorStopsBeforeExits(t *testing.T) {
	boom := errors.New("connection reset")
	seq := func(yield func(Row, error) bool) {
		if yield(Row{ID: "u1", AccountID: "a"}, nil) {
			yield(Row{}, boom)
		}
	}
	writes := 0
	_, err := Stream(StreamInput{Stored: SliceList{{Name: "s1", Members: members("u1", "u2", "u3")}}, Rows: seq, Now: t0, MaxPerSlice: 5,
		Write: func(Step) error { writes++; return nil }})
	if !errors.Is(err, boom) || writes != 0 {
		t.Fatalf("err %v, %d writes; want the stream's error and no write", err, writes)
	}
}

// randomCase is stored slices as earlier passes (and interrupted writes)
// leave them, and who matches now.
func randomCase(r *rand.Rand) (existing []Slice, matching map[string]string, max int) {
	max = 1 + r.IntN(8)
	users := 5 + r.IntN(80)
	desired := map[string]Member{}
	for range users / 2 {
		uid := fmt.Sprintf("u%03d", r.IntN(users))
		desired[uid] = Member{UserID: uid, AccountID: fmt.Sprint("a", r.IntN(3)), EnteredAt: t0.Add(time.Duration(r.IntN(5)) * time.Hour)}
	}
	existing = applyPlan(nil, PlanSlices(nil, desired, 1+r.IntN(10)))
	switch r.IntN(4) {
	case 0: // a copy left by an interrupted write
		if len(existing) > 1 && len(existing[0].Members) > 0 {
			m := existing[0].Members[0]
			m.EnteredAt = m.EnteredAt.Add(time.Duration(r.IntN(3)-1) * time.Hour)
			existing[1].Members = append(existing[1].Members, m)
			sortMembers(existing[1].Members)
		}
	case 1: // an empty slice
		existing = append(existing, Slice{Name: "s-empty"})
	case 2: // an unsorted slice
		if len(existing) > 0 {
			slices.Reverse(existing[0].Members)
		}
	}
	matching = map[string]string{}
	for uid, m := range Members(existing) {
		if r.IntN(4) != 0 {
			matching[uid] = m.AccountID
			if r.IntN(6) == 0 {
				matching[uid] = fmt.Sprint("a", r.IntN(3))
			}
		}
	}
	for range r.IntN(30) {
		matching[fmt.Sprintf("u%03d", r.IntN(users+20))] = fmt.Sprint("a", r.IntN(3))
	}
	return existing, matching, max
}

// TestStreamEqualsDiffAndPlanSlices is the property: over random stored
// slices and members, Stream ends with the membership, counts, member count
// and sample of Diff and PlanSlices; slices hold 1..max members and nobody
// twice; no prefix of its writes misses a staying member; run again it
// writes nothing.
func TestStreamEqualsDiffAndPlanSlices(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 2))
	now := t0.Add(3*time.Hour + 700*time.Millisecond)
	for i := range 2000 {
		existing, matching, max := randomCase(r)
		checkStream(t, fmt.Sprint("case ", i), existing, matching, now, max)
	}
}

func checkStream(t *testing.T, name string, existing []Slice, matching map[string]string, now time.Time, max int) {
	t.Helper()
	stored := Members(existing)
	want, ch := Diff(stored, matching, now)
	fullAfter := Members(applyPlan(existing, PlanSlices(SortedCopy(existing), want, max)))
	steps, out := streamed(t, existing, matching, now, max)
	after := applySteps(existing, steps)
	if got := Members(after); !maps.EqualFunc(got, want, same) || !maps.EqualFunc(got, fullAfter, same) {
		t.Fatalf("%s: membership after Stream\n%v\nwant\n%v", name, got, want)
	}
	if out.Counts != ch.Counts() || out.Members != len(want) {
		t.Fatalf("%s: counts %+v, %d members; want %+v, %d", name, out.Counts, out.Members, ch.Counts(), len(want))
	}
	if sample := Smallest(maps.Keys(want), 3); !slices.Equal(out.Sample, sample) {
		t.Fatalf("%s: sample %v, want %v", name, out.Sample, sample)
	}
	seen := map[string]bool{}
	for _, s := range after {
		if len(s.Members) == 0 || len(s.Members) > max {
			t.Fatalf("%s: slice %s holds %d members (max %d)", name, s.Name, len(s.Members), max)
		}
		for _, m := range s.Members {
			if seen[m.UserID] {
				t.Fatalf("%s: %s stored twice", name, m.UserID)
			}
			seen[m.UserID] = true
		}
	}
	// Steps not marked After may be made at once, in any order: each one
	// landing alone after the steps before the last After one must keep
	// every staying member too.
	landed := 0
	for i, st := range steps {
		if !slices.IsSortedFunc(st.Slice.Members, func(a, b Member) int { return compareStrings(a.UserID, b.UserID) }) {
			t.Fatalf("%s: write %d is not in id order: %v", name, i, st.Slice.Members)
		}
		if st.After {
			landed = i
		} else if i > 0 && steps[i-1].After {
			t.Fatalf("%s: write %d is not After, the one before is", name, i)
		}
		alone := append(slices.Clone(steps[:landed]), st)
		for _, held := range []map[string]Member{Members(applySteps(existing, steps[:i])), Members(applySteps(existing, alone))} {
			for uid, m := range stored {
				if _, stays := want[uid]; !stays {
					continue
				}
				if h, ok := held[uid]; !ok || !h.EnteredAt.Equal(m.EnteredAt) {
					t.Fatalf("%s: after %d of %d writes (or write %d alone), staying member %s is missing or re-entered", name, i, len(steps), i, uid)
				}
			}
		}
	}
	if again, _ := streamed(t, after, matching, now, max); len(again) != 0 {
		t.Fatalf("%s: the same members again write %+v", name, again)
	}
}

// SortedCopy is existing in name order, as PlanSlices takes it.
func SortedCopy(existing []Slice) []Slice {
	out := slices.Clone(existing)
	SortSlices(out)
	return out
}

func FuzzStream(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 0, 4, 5, 255, 1, 9, 254, 1, 2, 7}, uint8(2))
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		max := int(size%8) + 1
		// data encodes existing slices (255 starts a new slice) then, after
		// 254, the members now; ids are bytes, the account their parity,
		// entry times the byte's high bits.
		var existing []Slice
		cur := Slice{Name: "s0"}
		matching := map[string]string{}
		inMatching := false
		for _, b := range data {
			switch {
			case b == 254:
				inMatching = true
			case inMatching:
				matching[fmt.Sprint(b%40)] = fmt.Sprint(b % 2)
			case b == 255:
				existing = append(existing, cur)
				cur = Slice{Name: fmt.Sprintf("s%d", len(existing))}
			default:
				cur.Members = append(cur.Members, Member{UserID: fmt.Sprint(b % 40), AccountID: "0", EnteredAt: t0.Add(time.Duration(b/40) * time.Hour)})
			}
		}
		existing = append(existing, cur)
		checkStream(t, "fuzz", existing, matching, t0.Add(10*time.Hour), max)
	})
}
