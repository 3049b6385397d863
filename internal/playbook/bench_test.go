package playbook

import (
	"fmt"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// BenchmarkCompute100k plans a pass over 100 k members with a ledger of 99 k
// finished runs and 1 k new entries: the steady state of a large playbook.
// It reports the ledger writes and Jobs the pass produces per entering user.
func BenchmarkCompute100k(b *testing.B) {
	const users, fresh = 100_000, 1_000
	s := spec("a", "b")
	s.Created = t0.Add(-48 * time.Hour)
	members := make([]Member, users)
	runs := make(map[string]v1alpha1.PlaybookRun, users)
	for i := range members {
		u := fmt.Sprintf("user-%06d", i)
		members[i] = member(u, t0.Add(-time.Duration(i)*time.Second))
		if i >= fresh {
			r := running(u, "b", "job", members[i].EnteredAt)
			r.Phase = v1alpha1.RunSucceeded
			runs[u] = r
		}
	}
	var slices []LedgerSlice
	for _, u := range sortedKeys(runs) {
		if len(slices) == 0 || len(slices[len(slices)-1].Runs) == v1alpha1.MaxRunsPerSlice {
			slices = append(slices, LedgerSlice{Name: fmt.Sprintf("s%04d", len(slices))})
		}
		last := &slices[len(slices)-1]
		last.Runs = append(last.Runs, runs[u])
	}
	in := Input{Spec: s, Members: members, Runs: runs, Now: t0, Limits: Limits{MaxConcurrent: 10_000, Budget: 10_000}}
	b.ReportAllocs()
	b.ResetTimer()
	var p Plan
	var lp LedgerPlan
	for i := 0; i < b.N; i++ {
		p = Compute(in)
		lp = PlanLedger(slices, p.Changed, v1alpha1.MaxRunsPerSlice)
	}
	b.StopTimer()
	if len(p.Launch) != fresh {
		b.Fatalf("launched %d Jobs, want %d", len(p.Launch), fresh)
	}
	b.ReportMetric(float64(lp.Writes()), "ledger-writes/op")
	b.ReportMetric(float64(lp.Writes()+len(p.Launch))/fresh, "writes/user")
}
