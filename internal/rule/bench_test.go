package rule

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"

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

func BenchmarkEval1MCEL(b *testing.B) {
	n := benchStore(b)
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(atRisk, v.Schema())
		if err != nil {
			b.Fatal(err)
		}
		e := p.NewEvaluator(v, now)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
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

// BenchmarkEval1MGo is the at-risk filter hand-written in Go, reading the same
// profiles through the same resolved fields.
func BenchmarkEval1MGo(b *testing.B) {
	n := benchStore(b)
	n.Read(nil, func(v *profile.View) {
		uf := v.UserFields([]string{"role", "nps"})
		af := v.AccountFields([]string{"tier", "renewalDate"})
		window := 2160 * time.Hour
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			members := 0
			for u := range v.Users() {
				a, ok := u.Account()
				if !ok {
					continue
				}
				tier, ok1 := a.Field(&af, 0)
				renewal, ok2 := a.Field(&af, 1)
				role, ok3 := u.Field(&uf, 0)
				nps, ok4 := u.Field(&uf, 1)
				if ok1 && ok2 && ok3 && ok4 &&
					tier.(types.String) == "enterprise" &&
					renewal.(types.Timestamp).Sub(now) <= window &&
					role.(types.String) == "decision_maker" &&
					nps.(types.Int) <= 6 {
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
