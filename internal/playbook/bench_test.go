package playbook

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// bench1M is a persona of 1 M members in 1,000 slices whose entries all ran
// (1 M succeeded runs in 2,000 ledger slices), and the same slices after one
// more user entered (slice 500 at a new version).
func bench1M() (spec Spec, before, after []MemberSlice, ledger []RunSlice) {
	const users, perSlice = 1_000_000, 1_000
	spec = Spec{Name: "pb", UID: "uid", Once: true, Created: t0.Add(-48 * time.Hour), UsersPerJob: 1, Steps: []Step{{Name: "a"}}}
	for i := range users / perSlice {
		s := MemberSlice{Persona: "p", Name: fmt.Sprintf("p-%04d", i), Version: "1", Members: make([]v1alpha1.MembershipEntry, perSlice)}
		for j := range s.Members {
			u := fmt.Sprintf("user-%07d", i*perSlice+j)
			s.Members[j] = v1alpha1.MembershipEntry{UserID: u, AccountID: "acct", EnteredAt: metav1.NewTime(t0.Add(-time.Hour))}
		}
		before = append(before, s)
	}
	for i := range users / v1alpha1.MaxRunsPerSlice {
		r := RunSlice{Name: fmt.Sprintf("pb-runs-%d", i+1), Version: "1", Runs: make([]v1alpha1.PlaybookRun, v1alpha1.MaxRunsPerSlice)}
		for j := range r.Runs {
			m := before[0].Members[0]
			u := fmt.Sprintf("user-%07d", i*v1alpha1.MaxRunsPerSlice+j)
			r.Runs[j] = v1alpha1.PlaybookRun{UserID: u, AccountID: "acct", Persona: "p", EnteredAt: m.EnteredAt, Step: "a",
				Phase: v1alpha1.RunSucceeded, Job: "job"}
		}
		ledger = append(ledger, r)
	}
	after = append([]MemberSlice(nil), before...)
	s := after[500]
	s.Members = append(append([]v1alpha1.MembershipEntry(nil), s.Members...),
		v1alpha1.MembershipEntry{UserID: "user-0500999x", AccountID: "acct", EnteredAt: metav1.NewTime(t0)})
	s.Version = "2"
	after[500] = s
	return spec, before, after, ledger
}

// BenchmarkOneEntry1M plans the pass after one user entered a 1 M-member
// persona whose 1 M entries all ran: a full pass (every member and run read,
// as every pass did before the Book) against the Book's pass (the changed
// slice, a search for the user, the live users). Each pass includes its
// ledger plan, and must launch the one user.
func BenchmarkOneEntry1M(b *testing.B) {
	spec, before, after, ledger := bench1M()
	ledgerSlices := make([]LedgerSlice, len(ledger))
	for i, s := range ledger {
		ledgerSlices[i] = LedgerSlice{Name: s.Name, Runs: s.Runs}
	}
	check := func(b *testing.B, p Plan, lp LedgerPlan) {
		if len(p.Launch) != 1 || p.Counts.Succeeded != 1_000_000 || lp.Writes() != 1 {
			b.Fatalf("launched %d, %+v, %d ledger writes", len(p.Launch), p.Counts, lp.Writes())
		}
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			p := NewBook(spec, after, ledger).Plan(nil, Limits{MaxConcurrent: 10, Budget: 10}, t0)
			check(b, p, PlanLedger(ledgerSlices, p.Changed, v1alpha1.MaxRunsPerSlice))
		}
	})
	b.Run("incremental", func(b *testing.B) {
		book := NewBook(spec, before, ledger)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if !book.Sync(after, ledger) {
				b.Fatal("fell back to a full pass")
			}
			p := book.Plan(nil, Limits{MaxConcurrent: 10, Budget: 10}, t0)
			check(b, p, PlanLedgerAt(ledgerSlices, p.Changed, v1alpha1.MaxRunsPerSlice, book.Holders(p.Changed)))
			b.StopTimer()
			book.Sync(before, ledger) // the user gone again, for the next round
			b.StartTimer()
		}
	})
}
