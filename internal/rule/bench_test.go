package rule

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// The at-risk rule over 1 M profiles on one core, against the same filter written
// in Go over the same store:
//
//	go test ./internal/rule -run '^$' -bench Eval1M -benchmem -cpu 1

const benchN = 1_000_000

var benchNS *profile.Namespace

func benchStore(b *testing.B) *profile.Namespace {
	if benchNS != nil {
		return benchNS
	}
	n := profile.NewStore().Namespace("bench")
	roles := []string{"decision_maker", "champion", "end_user"}
	users := make([][]any, 0, benchN)
	for i := 0; i < benchN; i++ {
		users = append(users, []any{fmt.Sprintf("u%d", i), fmt.Sprintf("a%d", i/10), roles[i%3], int64(i % 11),
			now.Add(-time.Duration(i%300) * 24 * time.Hour), []any{"sso"}})
	}
	load(b, n, "users", usersSpec, userFields, users...)
	tiers := []string{"enterprise", "mid-market", "smb"}
	accounts := make([][]any, 0, benchN/10)
	for i := 0; i < benchN/10; i++ {
		accounts = append(accounts, []any{fmt.Sprintf("a%d", i), tiers[i%3], float64(i), now.Add(time.Duration(i%365) * 24 * time.Hour)})
	}
	load(b, n, "accounts", accountsSpec, accountFields, accounts...)
	benchNS = n
	return n
}

// BenchmarkEval1MCEL is one evaluation of the at-risk rule per iteration, as a
// reconcile does it: a new Evaluator (which tabulates the rule's clauses) over
// the view's cached snapshot, then every profile. The snapshot and its columns
// are built before the timer starts (BenchmarkEval1MFirst measures that).
func BenchmarkEval1MCEL(b *testing.B) { benchEval1M(b, atRisk) }

// benchEval1M evaluates expr over every profile of the bench store per
// iteration, with a new Evaluator each time, the columns built beforehand.
func benchEval1M(b *testing.B, expr string) {
	n := benchStore(b)
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(expr, v.Schema())
		if err != nil {
			b.Fatal(err)
		}
		p.NewEvaluator(v, now) // builds the columns
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e := p.NewEvaluator(v, now)
			members := 0
			for u := range v.Users() {
				if ok, _ := e.Match(u); ok {
					members++
				}
			}
			if members == 0 {
				b.Fatal("no members")
			}
		}
		b.ReportMetric(float64(benchN)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	})
}

// BenchmarkEval1MGo is the at-risk filter hand-written in Go over the same data:
// the same snapshot, the same resolved columns read through the same accessors
// the CEL evaluator uses, and the same clause order with short-circuiting, as
// anyone writing it by hand would.
func BenchmarkEval1MGo(b *testing.B) {
	n := benchStore(b)
	n.Read(nil, func(v *profile.View) {
		v.UserFields([]string{"role", "nps"}) // builds the columns
		v.AccountFields([]string{"tier", "renewalDate"})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			uf := v.UserFields([]string{"role", "nps"})
			af := v.AccountFields([]string{"tier", "renewalDate"})
			if goAtRisk(v, &uf, &af) == 0 {
				b.Fatal("no members")
			}
		}
		b.ReportMetric(float64(benchN)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	})
}

func goAtRisk(v *profile.View, uf, af *profile.Fields) int {
	const window = 2160 * time.Hour
	members := 0
	for u := range v.Users() {
		tier, ok := u.AccountVal(af, 0).(types.String)
		if !ok || tier != "enterprise" {
			continue
		}
		renewal, ok := u.AccountVal(af, 1).(types.Timestamp)
		if !ok || renewal.Sub(now) > window {
			continue
		}
		role, ok := u.Val(uf, 0).(types.String)
		if !ok || role != "decision_maker" {
			continue
		}
		if nps, ok := u.Val(uf, 1).(types.Int); ok && nps <= 6 {
			members++
		}
	}
	return members
}

// BenchmarkEval1MFirst is the first evaluation after the store changed: it
// builds the view's snapshot and the rule's columns, then evaluates. Later
// evaluations of the same generation (every refreshInterval) cost what
// BenchmarkEval1MCEL measures.
func BenchmarkEval1MFirst(b *testing.B) {
	n := benchStore(b)
	var p *Program
	n.Read(nil, func(v *profile.View) {
		var err error
		if p, err = Compile(atRisk, v.Schema()); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Any Apply invalidates the cached snapshot.
		load(b, n, "tick", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"}}, []string{"id"})
		b.StartTimer()
		n.Read(nil, func(v *profile.View) {
			e := p.NewEvaluator(v, now)
			members := 0
			for u := range v.Users() {
				if ok, _ := e.Match(u); ok {
					members++
				}
			}
			if members == 0 {
				b.Fatal("no members")
			}
		})
	}
	b.ReportMetric(float64(benchN)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkNextChange1M finds the at-risk rule's next change by time alone
// over the 1 M profiles (renewalDate is dictionary-coded: once per distinct
// date), as every evaluation of a rule with `now` does.
func BenchmarkNextChange1M(b *testing.B) {
	n := benchStore(b)
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(atRisk, v.Schema())
		if err != nil {
			b.Fatal(err)
		}
		p.NewEvaluator(v, now).NextChange() // builds the columns
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok := p.NewEvaluator(v, now).NextChange(); !ok {
				b.Fatal("no next change")
			}
		}
	})
}

// BenchmarkRules1M evaluates rules of different shapes over the same 1 M
// profiles, one evaluation per iteration: tabulated (every clause reads one
// attribute), interpreted with the fast paths, a string extension (bounded:
// tabulated), and cost-tracked (a concatenation, a comprehension). It measures what the runtime cost limit costs:
//
//	go test ./internal/rule -run '^$' -bench Rules1M -benchmem -cpu 1 -benchtime 3x -count 3
func BenchmarkRules1M(b *testing.B) {
	rules := []struct{ name, expr string }{
		{"tabulated", atRisk},
		{"interpreted", `user.nps <= 6 || account.tier == "enterprise" && user.role == "champion"`},
		{"string-extension", `user.role.lowerAscii() == "champion" && user.nps <= 6`},
		{"concatenation", `user.role + "!" == "champion!" && user.nps <= 6`},
		{"comprehension", `user.features.exists(f, f == "sso") && user.nps <= 6`},
	}
	for _, r := range rules {
		b.Run(r.name, func(b *testing.B) { benchEval1M(b, r.expr) })
	}
}
