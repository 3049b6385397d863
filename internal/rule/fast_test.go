package rule

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/rulegen"
)

// The fast paths (fast.go, table.go) must give exactly what CEL's own plan
// gives: the same members, the same errors with the same messages. These tests
// evaluate rules both ways over profiles with absent values, no account, an
// account known only by id, NaN, ±0, and timestamps and durations at the ends
// of their ranges.

var (
	diverseUsers = v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"}, Attributes: []v1alpha1.AttributeMapping{
		{Name: "role", Type: v1alpha1.TypeString}, {Name: "nps", Type: v1alpha1.TypeInt},
		{Name: "score", Type: v1alpha1.TypeDouble}, {Name: "lastLogin", Type: v1alpha1.TypeTimestamp},
		{Name: "tenure", Type: v1alpha1.TypeDuration}, {Name: "active", Type: v1alpha1.TypeBool},
		{Name: "features", Type: v1alpha1.TypeList},
	}}
	diverseUserFields = []string{"id", "account", "role", "nps", "score", "lastLogin", "tenure", "active", "features"}
	diverseAccounts   = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"}, Attributes: []v1alpha1.AttributeMapping{
		{Name: "tier", Type: v1alpha1.TypeString}, {Name: "arr", Type: v1alpha1.TypeDouble},
		{Name: "renewalDate", Type: v1alpha1.TypeTimestamp}, {Name: "seats", Type: v1alpha1.TypeInt},
	}}
	diverseAccountFields = []string{"id", "tier", "arr", "renewalDate", "seats"}
)

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// diverse loads n users over 10 account ids (a9 has no account row; every
// seventh user has no account id) with values drawn from small pools, nil
// meaning absent, timestamps and durations at the ends of their ranges
// included.
func diverse(t testing.TB, n int, seed uint64) *profile.Namespace {
	return diverseStore(t, n, seed, true)
}

// diverseStore is diverse; with extreme false, timestamps stay within 2000 to
// 2060 and durations within 10 years, so that no arithmetic of a generated
// rule comes near overflowing (±292 years) within years of now.
func diverseStore(t testing.TB, n int, seed uint64, extreme bool) *profile.Namespace {
	r := rand.New(rand.NewPCG(seed, 1))
	pick := func(vals ...any) any { return vals[r.IntN(len(vals))] }
	times := []any{nil, now, now.Add(-time.Hour), now.Add(2160 * time.Hour), now.Add(2160*time.Hour + time.Nanosecond),
		now.Add(-30 * 24 * time.Hour), now.Add(90 * 24 * time.Hour),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2060, 6, 1, 0, 0, 0, 5, time.UTC),
		now.In(time.FixedZone("x", 3600)), now.Add(3*365*24*time.Hour + 17*time.Second)}
	durations := []any{nil, time.Duration(0), time.Hour, 2160 * time.Hour, -5 * time.Hour, 10 * 365 * 24 * time.Hour,
		-(2*365*24*time.Hour + time.Millisecond)}
	if extreme {
		times = append(times, minTime, maxTime, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 6, 1, 0, 0, 0, 5, time.UTC))
		durations = append(durations, time.Duration(math.MaxInt64), time.Duration(math.MinInt64+1), 100*365*24*time.Hour)
	}
	ns := profile.NewStore().Namespace("diverse")
	rows := make([][]any, 0, n)
	for i := 0; i < n; i++ {
		account := any(fmt.Sprintf("a%d", i%10))
		if i%7 == 0 {
			account = nil
		}
		rows = append(rows, []any{fmt.Sprintf("u%d", i), account,
			pick(nil, "decision_maker", "champion", "end_user", ""),
			pick(nil, int64(0), int64(3), int64(6), int64(7), int64(10), int64(math.MaxInt64), int64(math.MinInt64)),
			pick(nil, 0.0, math.Copysign(0, -1), 5.5, 6.0, math.NaN(), math.Inf(1), -1e300),
			pick(times...), pick(durations...),
			pick(nil, true, false),
			pick(nil, []any{"sso"}, []any{"sso", "audit_log"}, []any{}),
		})
	}
	load(t, ns, "users", diverseUsers, diverseUserFields, rows...)
	var accounts [][]any
	for i := 0; i < 9; i++ {
		accounts = append(accounts, []any{fmt.Sprintf("a%d", i),
			pick(nil, "enterprise", "smb", "mid-market"), pick(nil, 0.0, 250000.0, math.NaN()),
			pick(times...), pick(nil, int64(1), int64(50), int64(math.MaxInt64))})
	}
	load(t, ns, "accounts", diverseAccounts, diverseAccountFields, accounts...)
	return ns
}

// fastRules exercise every fast path and its fallbacks.
var fastRules = []string{
	atRisk,
	`true`,
	`user.role == "champion"`,
	`"champion" == user.role`,
	`user.role != "champion"`,
	`user.role < "d"`, `user.role <= "decision_maker"`, `"d" > user.role`, `user.role >= "end_user"`,
	`user.nps <= 6`, `6 >= user.nps`, `user.nps < 7`, `user.nps > 6`, `user.nps == 7`, `user.nps != 7`,
	`user.nps > 5.5`, `dyn(user.nps) == 6.0`, `dyn(user.score) == 6`, `user.score > 5`, `user.score == 0.0`, `1.0 / user.score < 0.0`,
	`has(user.nps) && user.nps <= 6`,
	`!has(user.nps) || user.nps > 6`,
	`has(account.tier)`, `!has(account.tier)`,
	`account.tier == "enterprise"`,
	`account.id == "a3"`, `user.accountId == "a9"`, `user.id == "u3" || user.id == "u4"`,
	`account.renewalDate - now <= duration("2160h")`,
	`now - account.renewalDate >= duration("-2160h")`,
	`account.renewalDate < now + duration("2160h")`,
	`now + duration("2160h") > account.renewalDate`,
	`account.renewalDate <= now - duration("720h")`,
	`user.lastLogin + user.tenure > now`,
	`user.lastLogin - user.tenure < now`,
	`now - user.lastLogin > duration("720h")`,
	`user.tenure + duration("1h") > duration("2160h")`,
	`user.tenure - duration("1h") >= user.tenure`,
	`user.lastLogin - account.renewalDate < duration("0s")`,
	`user.lastLogin < now`, `user.tenure >= duration("1h")`,
	`(account.renewalDate - now) - duration("1h") <= duration("2159h")`,
	`user.active && user.nps <= 6`,
	`user.active || account.tier == "smb"`,
	`user.active == false`,
	`user.nps <= 6 ? account.tier == "enterprise" : user.role == "champion"`,
	`"sso" in user.features`,
	`user.role in ["champion", "end_user"]`,
	`size(user.features) > 1 && user.role.startsWith("c")`,
	`user.features.exists(f, f == "sso") && user.nps <= 6`,
	`account.tier == "enterprise" && account.arr > 100000.0 && user.role == "decision_maker"`,
	`account.seats > 10 && user.nps <= 6 && user.lastLogin < now`,
	`!(user.nps <= 6) && !(account.tier == "smb")`,
	`user.nps + 1 > 7`,
	`int(user.score) > 3`,
	`account.tier == user.role`,
	`string(user.nps) == "6"`,
}

func TestFastPathsMatchCEL(t *testing.T) {
	n := diverse(t, 400, 1)
	for _, expr := range fastRules {
		t.Run(expr, func(t *testing.T) { compareWithPlain(t, n, expr, true) })
	}
	for _, expr := range []string{`user.nps`, `account.renewalDate - now`, `user.score`, `has(user.role) ? user.role : "none"`,
		`user.lastLogin + user.tenure`, `account.arr`} {
		t.Run("value "+expr, func(t *testing.T) { compareWithPlain(t, n, expr, false) })
	}
}

// compareWithPlain evaluates expr with the fast paths and with CEL's plan over
// every profile, both as iterated (tables apply) and looked up by id.
func compareWithPlain(t *testing.T, n *profile.Namespace, expr string, isRule bool) {
	t.Helper()
	n.Read(nil, func(v *profile.View) {
		fast, err := compile(expr, v.Schema(), isRule, false)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := compile(expr, v.Schema(), isRule, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{now, now.Add(2160 * time.Hour), maxTime} {
			fe, pe := fast.NewEvaluator(v, at), plain.NewEvaluator(v, at)
			for u := range v.Users() {
				byID, _ := v.User(u.ID())
				want := outcome(pe, byID, isRule)
				if got := outcome(fe, u, isRule); got != want {
					t.Fatalf("now=%s %s: fast %s, CEL %s", at, u.ID(), got, want)
				}
				if got := outcome(fe, byID, isRule); got != want {
					t.Fatalf("now=%s %s by id: fast %s, CEL %s", at, u.ID(), got, want)
				}
			}
		}
	})
}

func outcome(e *Evaluator, u profile.User, isRule bool) string {
	if isRule {
		ok, err := e.Match(u)
		return fmt.Sprintf("%v/%v", ok, err)
	}
	out, err := e.Eval(u)
	if err != nil {
		return "error " + err.Error()
	}
	return describeVal(out)
}

func describeVal(v ref.Val) string {
	if v == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s:%v", v.Type().TypeName(), v.Value())
}

func TestFlattenKeepsOrderAndTerms(t *testing.T) {
	n := fixture(t)
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(`account.tier == "enterprise" && (user.nps <= 6 && user.role == "decision_maker") && now > user.lastLogin`, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if len(p.terms) != 4 || !p.allTerms {
			t.Fatalf("terms = %d (all %v), want the 4 operands of one &&", len(p.terms), p.allTerms)
		}
		if _, err := Compile(`user.nps <= 6 && user.nps > account.seats`, v.Schema()); err == nil {
			t.Fatal("account.seats is not declared in the fixture: want a compile error")
		}
		p, err = Compile(`user.nps <= 6 && (user.nps * 2 > user.nps || !has(user.nps))`, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if len(p.terms) != 2 || !p.allTerms {
			t.Fatalf("terms = %d (all %v): a clause reading one attribute twice is still one attribute", len(p.terms), p.allTerms)
		}
		p, err = Compile(`user.nps <= 6 && user.role == account.tier`, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if len(p.terms) != 1 || p.allTerms {
			t.Fatalf("terms = %d (all %v): a clause reading two attributes has no table", len(p.terms), p.allTerms)
		}
	})
}

func TestAtRiskIsTabulated(t *testing.T) {
	n := diverse(t, 50, 2)
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(atRisk, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		e := p.NewEvaluator(v, now)
		if len(e.tabs) != 4 || !e.complete {
			t.Fatalf("tables = %d (complete %v), want one per clause", len(e.tabs), e.complete)
		}
	})
}

func FuzzFastPathsMatchCEL(f *testing.F) {
	for _, seed := range []string{"\x00\x00\x02\x03", "\x05\x02\x00\x01\x02\x03", "\x00\x05\x03\x00\x01\x00\x02", "\x03\x04\x01\x02\x05\x02\x00\x00"} {
		f.Add([]byte(seed))
	}
	n := diverse(f, 60, 3)
	f.Fuzz(func(t *testing.T, data []byte) {
		expr := rulegen.Rule(data)
		n.Read(nil, func(v *profile.View) {
			if _, err := Compile(expr, v.Schema()); err != nil {
				t.Skip(err) // e.g. comparing types CEL does not compare
			}
		})
		compareWithPlain(t, n, expr, true)
	})
}

// TestRandomRulesMatchCEL runs the fuzz target's generator over a fixed set of
// inputs, so `go test` covers it without -fuzz.
func TestRandomRulesMatchCEL(t *testing.T) {
	n := diverse(t, 60, 3)
	r := rand.New(rand.NewPCG(7, 7))
	compiled := 0
	for i := 0; i < 400; i++ {
		data := make([]byte, 40)
		for j := range data {
			data[j] = byte(r.UintN(256))
		}
		g := rulegen.New(data)
		g.Extreme = true
		expr := g.Rule()
		ok := true
		n.Read(nil, func(v *profile.View) {
			_, err := Compile(expr, v.Schema())
			ok = err == nil
		})
		if !ok {
			continue
		}
		compiled++
		t.Run(fmt.Sprint(i), func(t *testing.T) { compareWithPlain(t, n, expr, true) })
	}
	if compiled < 100 {
		t.Fatalf("only %d of 400 random rules compiled", compiled)
	}
}
