package profile

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// benchRecords are n user records of usersSpec, the first changed ones
// carrying another nps.
func benchRecords(n, changed int) []connector.Record {
	fields := []string{"account", "id", "nps", "role"}
	recs := make([]connector.Record, n)
	for i := range recs {
		nps := int64(i % 11)
		if i < changed {
			nps = 100
		}
		recs[i] = connector.Record{Num: int64(i + 1), Fields: fields,
			Values: []any{fmt.Sprintf("acct%d", i%1000), fmt.Sprintf("user-%07d", i), nps, "member"}}
	}
	return recs
}

// BenchmarkApply1M compares what reaching a one-percent change costs on a
// source of a million users: a full sync (map every record, build the
// source's data, replace it in the store) against an incremental one (map
// the changed records, apply them as a delta).
func BenchmarkApply1M(b *testing.B) {
	const rows, changed = 1_000_000, 10_000
	m, err := attr.NewMapper(&usersSpec)
	if err != nil {
		b.Fatal(err)
	}
	load := func(n *Namespace, recs []connector.Record) {
		bld := NewBuilder("users", 0, m, len(recs))
		for _, r := range recs {
			mapped, err := m.Map(r)
			if err != nil {
				b.Fatal(err)
			}
			bld.Add(mapped)
		}
		n.Apply(bld.Finish())
	}
	base := benchRecords(rows, 0)
	n := newNamespace()
	load(n, base)

	b.Run("full", func(b *testing.B) {
		all := benchRecords(rows, changed)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			load(n, all)
		}
	})
	round := 0
	b.Run("delta", func(b *testing.B) {
		delta := benchRecords(changed, changed)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			round++
			db := NewDeltaBuilder("users", m)
			for _, r := range delta {
				r.Values = append([]any(nil), r.Values...)
				r.Values[2] = int64(200 + round) // a real change each time
				mapped, err := m.Map(r)
				if err != nil {
					b.Fatal(err)
				}
				db.Upsert(mapped)
			}
			if res := n.ApplyDelta(db.Finish()); res.Upserted != changed {
				b.Fatalf("upserted %d", res.Upserted)
			}
		}
	})
}

// BenchmarkResyncPeak1M measures the heap a full re-sync of a million users
// holds on top of the stored source just before the store swaps it (1% of the
// rows changed): a second full copy, or, reusing unchanged rows, a map and
// the changes. Reported as retained-MB.
func BenchmarkResyncPeak1M(b *testing.B) {
	const rows, changed = 1_000_000, 10_000
	m, err := attr.NewMapper(&usersSpec)
	if err != nil {
		b.Fatal(err)
	}
	build := func(recs []connector.Record, prev *SourceData) *SourceData {
		bld := NewBuilder("users", 0, m, len(recs))
		bld.Reuse(prev)
		for _, r := range recs {
			mapped, err := m.Map(r)
			if err != nil {
				b.Fatal(err)
			}
			bld.Add(mapped)
		}
		return bld.Finish()
	}
	stored := build(benchRecords(rows, 0), nil)
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			for range b.N {
				recs := benchRecords(rows, changed)
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				before := ms.HeapAlloc
				var prev *SourceData
				if reuse {
					prev = stored
				}
				next := build(recs, prev)
				runtime.GC()
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapAlloc-before)/1e6, "retained-MB")
				runtime.KeepAlive(next)
				runtime.KeepAlive(recs)
			}
		})
	}
	runtime.KeepAlive(stored)
}
