package profile

import (
	"runtime"
	"testing"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// BenchmarkSnapshotAfterDelta1M is what the first full read after an
// incremental sync of 1 % of a million users costs (the snapshot and the
// columns a rule reads): derived from the last snapshot, or rebuilt from the
// store's maps as before snapshots were derived.
//
//	go test ./internal/profile -run '^$' -bench SnapshotAfterDelta1M -benchmem -cpu 1 -benchtime 10x
func BenchmarkSnapshotAfterDelta1M(b *testing.B) {
	const rows, changed = 1_000_000, 10_000
	m, err := attr.NewMapper(&usersSpec)
	if err != nil {
		b.Fatal(err)
	}
	n := newNamespace()
	bld := NewBuilder("users", 0, m, rows)
	for _, r := range benchRecords(rows, 0) {
		mapped, err := m.Map(r)
		if err != nil {
			b.Fatal(err)
		}
		bld.Add(mapped)
	}
	n.Apply(bld.Finish())
	round := 0
	// applyDelta changes the nps of the first 1 % of the users (every pass
	// another value, so each is a change), collected before the timer runs.
	applyDelta := func() {
		round++
		db := NewDeltaBuilder("users", m)
		for _, r := range benchRecords(changed, changed) {
			r.Values = append([]any(nil), r.Values...)
			r.Values[2] = int64(200 + round)
			mapped, err := m.Map(r)
			if err != nil {
				b.Fatal(err)
			}
			db.Upsert(mapped)
		}
		n.ApplyDelta(db.Finish())
		runtime.GC()
	}
	read := func(v *View) {
		f := v.UserFields([]string{"nps", "role", "account"})
		if v.Len() != rows || f.cols[0] == nil {
			b.Fatal("no columns")
		}
	}
	n.Read(nil, read)
	for _, mode := range []string{"derived", "rebuilt"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				applyDelta()
				if mode == "rebuilt" {
					n.invalidate(true)
				}
				b.StartTimer()
				n.Read(nil, read)
			}
		})
	}
}
