package membership

import (
	"fmt"
	"testing"
)

// Slice planning for 1 M members in slices of 1000 with 1 % churn (5 k exits,
// 5 k entries), then a no-op that must write nothing:
//
//	go test ./internal/membership -run '^$' -bench PlanSlices -benchmem
//
// Uniform: every 200th member exits, so every slice loses one (the worst case:
// each slice is written once, and the entries top those writes up). Clustered:
// 5 k consecutive members exit (5 slices emptied and deleted).
func BenchmarkPlanSlices1MChurn1PctUniform(b *testing.B) { benchPlan(b, 200, 1) }

func BenchmarkPlanSlices1MChurn1PctClustered(b *testing.B) { benchPlan(b, 1, 5000) }

func benchPlan(b *testing.B, stride, count int) {
	const n, size = 1_000_000, 1000
	var existing []Slice
	desired := make(map[string]Member, n)
	for s := 0; s < n/size; s++ {
		sl := Slice{Name: fmt.Sprintf("s%d", s)}
		for i := 0; i < size; i++ {
			m := mem(fmt.Sprintf("u%07d", s*size+i))
			sl.Members = append(sl.Members, m)
			desired[m.UserID] = m
		}
		existing = append(existing, sl)
	}
	// 1 % churn: 5 k exits (every stride-th member, or the first count), as many entries.
	for i, k := 0, 0; i < n && k < n/100; i += stride {
		if stride == 1 && i >= count {
			break
		}
		delete(desired, fmt.Sprintf("u%07d", i))
		m := mem(fmt.Sprintf("new%07d", i))
		desired[m.UserID] = m
		k++
	}
	var plan Plan
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plan = PlanSlices(existing, desired, size)
	}
	b.ReportMetric(float64(plan.Writes()), "writes")
	b.ReportMetric(float64(len(existing)), "slices")

	after := apply(existing, plan)
	if noop := PlanSlices(after, desired, size); noop.Writes() != 0 {
		b.Fatalf("no-op plan writes %d", noop.Writes())
	}
}

// The same churn planned from the changed users only (a change-driven pass:
// 10 k verdicts, 5 k exits and 5 k entries, uniform), against the full plan
// above; the writes must be the same:
//
//	go test ./internal/membership -run '^$' -bench 'PlanSlices1MChurn1PctUniform|PlanChanges1M' -benchmem
func BenchmarkPlanChanges1MChurn1PctUniform(b *testing.B) {
	const n, size = 1_000_000, 1000
	existing := fullSlices(n, size)
	verdicts := map[string]Verdict{}
	for i := 0; i < n; i += 200 {
		verdicts[fmt.Sprintf("u%07d", i)] = Verdict{}
		verdicts[fmt.Sprintf("new%07d", i)] = Verdict{Match: true, AccountID: "a"}
	}
	var out Outcome
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = PlanChanges(SliceList(existing), verdicts, t0, size)
	}
	b.ReportMetric(float64(out.Plan.Writes()), "writes")
	if out.Members != n || len(out.Change.Entered) != n/200 || len(out.Change.Exited) != n/200 {
		b.Fatalf("members %d, entered %d, exited %d", out.Members, len(out.Change.Entered), len(out.Change.Exited))
	}
}

// The same 1 % uniform churn merged from a stream of member ids in id order
// (the database path): B/op is what the merge itself allocates (the written
// slices' contents aside, which the API writes take one at a time), against
// the member map PlanSlices needs:
//
//	go test ./internal/membership -run '^$' -bench 'Stream1M|PlanSlices1MChurn1PctUniform' -benchmem
func BenchmarkStream1MChurn1PctUniform(b *testing.B) {
	const n, size = 1_000_000, 1000
	var existing []Slice
	for s := 0; s < n/size; s++ {
		sl := Slice{Name: fmt.Sprintf("s%04d", s)}
		for i := 0; i < size; i++ {
			sl.Members = append(sl.Members, mem(fmt.Sprintf("u%07d", s*size+i)))
		}
		existing = append(existing, sl)
	}
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if i%200 == 0 {
			ids = append(ids, fmt.Sprintf("u%07d+", i)) // exits, and enters next to it
			continue
		}
		ids = append(ids, fmt.Sprintf("u%07d", i))
	}
	seq := func(yield func(Row, error) bool) {
		for _, id := range ids {
			if !yield(Row{ID: id, AccountID: "a"}, nil) {
				return
			}
		}
	}
	var out Streamed
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		out, err = Stream(StreamInput{Stored: SliceList(existing), Rows: seq, Now: t0, MaxPerSlice: size, SampleSize: 10,
			Write: func(Step) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Writes), "writes")
	if out.Members != n || out.Counts.Entered != n/200 || out.Counts.Exited != n/200 {
		b.Fatalf("%+v", out)
	}
}

// One changed user against 1 M stored members in 1000 slices (a pass after a
// single-row change): binary search in each slice, against the walk over
// every member that many verdicts use:
//
//	go test ./internal/membership -run '^$' -bench 'Locate1MOneChange' -benchmem
func BenchmarkLocate1MOneChange(b *testing.B) {
	const n, size = 1_000_000, 1000
	existing := fullSlices(n, size)
	verdicts := map[string]Verdict{"u0500000": {}}
	for _, bc := range []struct {
		name string
		find func(Stored, map[string]Verdict, map[string][]Located)
	}{{"search", search}, {"walk", walk}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				found := map[string][]Located{}
				bc.find(SliceList(existing), verdicts, found)
				if len(found["u0500000"]) != 1 {
					b.Fatal("the user was not found")
				}
			}
		})
	}
}

// fullSlices are n members (u0000000 on) in full slices of size, as a plan
// writes them.
func fullSlices(n, size int) []Slice {
	var out []Slice
	for s := 0; s < n/size; s++ {
		sl := Slice{Name: fmt.Sprintf("s%d", s)}
		for i := 0; i < size; i++ {
			sl.Members = append(sl.Members, mem(fmt.Sprintf("u%07d", s*size+i)))
		}
		out = append(out, sl)
	}
	return out
}
