package persona

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

// What a persona costs after a sync changed 1 % of 1 M profiles (10 k users'
// nps), on one core: a full evaluation (the snapshot and its columns rebuilt,
// every profile evaluated) against a change-driven one (the 10 k profiles the
// store's journal names, starting from the stored members):
//
//	go test ./internal/persona -run '^$' -bench ChangeDriven1M -benchmem -cpu 1
//
// The target: changed ≤ 2 % of full.

const (
	bench1M      = 1_000_000
	benchChanged = bench1M / 100
	benchRule    = `account.tier == "enterprise" && account.renewalDate - now <= duration("2160h") && user.role == "decision_maker" && user.nps <= 6`
)

var (
	benchUsers = v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "role", Type: v1alpha1.TypeString}, {Name: "nps", Type: v1alpha1.TypeInt},
			{Name: "lastSeen", Type: v1alpha1.TypeTimestamp}}}
	benchUserFields = []string{"id", "account", "role", "nps", "lastSeen"}
	benchAccounts   = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString}, {Name: "renewalDate", Type: v1alpha1.TypeTimestamp}}}
)

func benchUserRow(i, nps int) []any {
	return []any{fmt.Sprintf("u%07d", i), fmt.Sprintf("a%06d", i/10), []string{"decision_maker", "champion", "end_user"}[i%3],
		int64(nps), now.Add(-time.Duration(i%300) * 24 * time.Hour)}
}

func benchNamespace(b *testing.B) *profile.Namespace {
	n := profile.NewStore().Namespace("bench")
	users := make([][]any, bench1M)
	for i := range users {
		users[i] = benchUserRow(i, i%11)
	}
	n.Apply(profiletest.Rows(b, "users", benchUsers, benchUserFields, users...))
	accounts := make([][]any, bench1M/10)
	for i := range accounts {
		accounts[i] = []any{fmt.Sprintf("a%06d", i), []string{"enterprise", "mid-market", "smb"}[i%3],
			now.Add(time.Duration(i%365) * 24 * time.Hour)}
	}
	n.Apply(profiletest.Rows(b, "accounts", benchAccounts, []string{"id", "tier", "renewalDate"}, accounts...))
	return n
}

// benchDeltas are two incremental syncs of the same 1 % of users (every
// hundredth) that set nps one way and back, so each apply changes them.
func benchDeltas(b *testing.B) [2]*profile.Delta {
	m, err := attr.NewMapper(&benchUsers)
	if err != nil {
		b.Fatal(err)
	}
	var out [2]*profile.Delta
	for k := range out {
		db := profile.NewDeltaBuilder("users", m)
		for j := range benchChanged {
			i := j * 100
			mapped := mapRecord(b, m, rowRecord(benchUserFields, benchUserRow(i, (i+5*k+5)%11)))
			db.Upsert(mapped)
		}
		out[k] = db.Finish()
	}
	return out
}

func rowRecord(fields []string, row []any) map[string]any {
	r := make(map[string]any, len(fields))
	for i, f := range fields {
		r[f] = row[i]
	}
	return r
}

func BenchmarkChangeDriven1M(b *testing.B) {
	n := benchNamespace(b)
	deltas := benchDeltas(b)
	var c *Compiled
	var mem *Memory
	n.Read(nil, func(v *profile.View) {
		var err error
		if c, err = Compile(&v1alpha1.PersonaSpec{Rule: benchRule}, v.Schema()); err != nil {
			b.Fatal(err)
		}
		ev := Evaluate(v, c, now, time.Now)
		mem = Remember(nil, ev, true, "k", v.Generation(), nil, now)
	})
	applied := 0 // alternates the deltas across runs, so each apply changes the users
	// Each apply's garbage is collected before the timer starts, so both
	// figures measure the evaluation, not a collection the sync caused.
	apply := func() {
		n.ApplyDelta(deltas[applied%2])
		applied++
		runtime.GC()
	}
	b.Run("full", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			apply()
			b.StartTimer()
			n.Read(nil, func(v *profile.View) { Evaluate(v, c, now, time.Now) })
		}
	})
	b.Run("changed", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			gen := n.Generation()
			apply()
			b.StartTimer()
			n.Read(nil, func(v *profile.View) {
				changes := v.Changes(gen)
				if changes.All || len(changes.Users) != benchChanged {
					b.Fatalf("changes: all %v, %d users", changes.All, len(changes.Users))
				}
				ev, ok := EvaluateChanged(v, c, mem, changes, now, time.Now)
				if !ok || len(ev.Verdicts) != benchChanged {
					b.Fatal("the change-driven evaluation fell back to a full one")
				}
			})
		}
	})
}

// What a full pass costs from evaluation to planned writes, after a sync
// changed 1 % of 1 M profiles, for a persona of about 580 k members (a time
// crossing or an insights refresh makes such passes): diffing every stored
// member against every matching profile (membership.Diff, PlanSlices), as a
// pass without a remembered bitset does, against planning from the positions
// whose membership differs (EvaluateMembers, FullVerdicts, PlanChanges):
//
//	go test ./internal/persona -run '^$' -bench FullPass1M -benchmem -cpu 1
func BenchmarkFullPass1M(b *testing.B) {
	const rule, size = `user.nps <= 6`, 1000
	n := benchNamespace(b)
	deltas := benchDeltas(b)
	var (
		c        *Compiled
		mem      *Memory
		existing []membership.Slice
	)
	n.Read(nil, func(v *profile.View) {
		var err error
		if c, err = Compile(&v1alpha1.PersonaSpec{Rule: rule}, v.Schema()); err != nil {
			b.Fatal(err)
		}
		ev := Evaluate(v, c, now, time.Now)
		desired, _ := membership.Diff(nil, ev.Matching, now)
		existing = membership.PlanSlices(nil, desired, size).Create
		mem = Remember(nil, ev, true, "k", v.Generation(), nil, now)
	})
	for k := range deltas {
		n.ApplyDelta(deltas[k]) // the store differs from the slices by the 10 k users
	}
	runtime.GC()
	in := PlanInput{Key: "k", Now: now}
	b.Run("diff-every-member", func(b *testing.B) {
		for range b.N {
			var plan membership.Plan
			n.Read(nil, func(v *profile.View) {
				ev := Evaluate(v.Detach(), c, now, time.Now)
				desired, _ := membership.Diff(membership.Members(existing), ev.Matching, now)
				plan = membership.PlanSlices(existing, desired, size)
			})
			b.ReportMetric(float64(plan.Writes()), "writes")
		}
	})
	b.Run("bitset", func(b *testing.B) {
		for range b.N {
			var out membership.Outcome
			n.Read(nil, func(v *profile.View) {
				in.Changes = v.Changes(mem.Generation)
				d := v.Detach()
				ev := EvaluateMembers(d, c, now, time.Now)
				verdicts, ok := FullVerdicts(mem, ev, d, in)
				if !ok {
					b.Fatal("FullVerdicts refused")
				}
				out = membership.PlanChanges(membership.SliceList(existing), verdicts, now, size)
			})
			b.ReportMetric(float64(out.Plan.Writes()), "writes")
		}
	})
}
