package rule

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/rulegen"
)

func TestTimeAnalysis(t *testing.T) {
	n := diverse(t, 10, 1)
	var schema Schema
	n.Read(nil, func(v *profile.View) { schema = v.Schema() })
	tests := []struct {
		expr        string
		uses, exact bool
		comparisons int
		reason      string // a substring of Reason when not exact
	}{
		{expr: `user.nps <= 6`},
		{expr: `user.lastLogin < timestamp("2026-01-01T00:00:00Z")`},
		// Each form.
		{expr: `account.renewalDate - now <= duration("2160h")`, uses: true, exact: true, comparisons: 1},
		{expr: `now - user.lastLogin > duration("720h")`, uses: true, exact: true, comparisons: 1},
		{expr: `account.renewalDate < now`, uses: true, exact: true, comparisons: 1},
		{expr: `now >= account.renewalDate`, uses: true, exact: true, comparisons: 1},
		{expr: `account.renewalDate <= now + duration("2160h")`, uses: true, exact: true, comparisons: 1},
		{expr: `user.lastLogin < now - duration("720h")`, uses: true, exact: true, comparisons: 1},
		{expr: `now + duration("2160h") >= account.renewalDate`, uses: true, exact: true, comparisons: 1},
		{expr: `duration("2160h") + now > account.renewalDate`, uses: true, exact: true, comparisons: 1},
		{expr: `now - duration("720h") > user.lastLogin + user.tenure`, uses: true, exact: true, comparisons: 1},
		{expr: `(account.renewalDate - now) - duration("24h") <= duration("2136h")`, uses: true, exact: true, comparisons: 1},
		{expr: `duration("2160h") >= account.renewalDate - now`, uses: true, exact: true, comparisons: 1},
		{expr: `now == account.renewalDate`, uses: true, exact: true, comparisons: 1},
		{expr: `now != account.renewalDate`, uses: true, exact: true, comparisons: 1},
		{expr: `account.renewalDate - now < user.tenure`, uses: true, exact: true, comparisons: 1},
		// now on both sides: cancels, or not.
		{expr: `now - user.lastLogin > now - account.renewalDate`, uses: true, exact: true, comparisons: 0},
		{expr: `now - user.lastLogin > account.renewalDate - now`, uses: true, reason: "multiple of `now`"},
		// Nested in &&, ||, !, ternaries; T and D of any shape.
		{expr: `account.tier == "enterprise" && account.renewalDate - now <= duration("2160h") && user.role == "decision_maker" && user.nps <= 6`,
			uses: true, exact: true, comparisons: 1},
		{expr: `!(now - user.lastLogin > duration("720h")) || (has(user.nps) && user.lastLogin > now)`, uses: true, exact: true, comparisons: 2},
		{expr: `user.active ? now - user.lastLogin > duration("24h") : account.renewalDate < now`, uses: true, exact: true, comparisons: 2},
		{expr: `(user.active ? user.lastLogin : account.renewalDate) + duration(string(user.nps) + "h") < now`, uses: true, exact: true, comparisons: 1},
		{expr: `now - (has(user.lastLogin) ? user.lastLogin : timestamp("2020-01-01T00:00:00Z")) > duration("1h")`, uses: true, exact: true, comparisons: 1},
		{expr: `user.features.exists(f, f == "sso") && now > user.lastLogin`, uses: true, exact: true, comparisons: 1},
		{expr: `now > user.lastLogin ? user.nps > 1 : user.nps < 1`, uses: true, exact: true, comparisons: 1},
		{expr: `[now > user.lastLogin, true].all(b, b)`, uses: true, exact: true, comparisons: 1},
		// Not analysable.
		{expr: `now.getDayOfWeek() == 1`, uses: true, reason: "outside a comparison"},
		{expr: `string(now) > "2026"`, uses: true, reason: "outside a comparison"},
		{expr: `now - user.lastLogin > duration("1h") && now.getHours() > 9`, uses: true, reason: "outside a comparison"},
		{expr: `user.features.exists(f, now > user.lastLogin)`, uses: true, reason: "inside a comprehension"},
		{expr: `[user.lastLogin].exists(t, t < now)`, uses: true, reason: "inside a comprehension"},
		{expr: `timestamp(string(now)) > user.lastLogin`, uses: true, reason: "not added to or subtracted"},
		{expr: `now > user.lastLogin + (now - account.renewalDate)`, uses: true, exact: true, comparisons: 0}, // now cancels out
		{expr: `now + (now - account.renewalDate) > user.lastLogin`, uses: true, reason: "multiple of `now`"},
		{expr: `duration(string(now - user.lastLogin)) > duration("1h")`, uses: true, reason: "not added to or subtracted"},
		{expr: `(now - user.lastLogin) * 2 > duration("1h")`, uses: true, reason: ""},
		{expr: `[now].exists(now, now > user.lastLogin)`, uses: true, reason: "named now"},
		{expr: `{"a": now}["a"] > user.lastLogin`, uses: true, reason: "not added to or subtracted"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := Compile(tt.expr, schema)
			if err != nil {
				if strings.Contains(tt.expr, "* 2") {
					return // durations do not multiply in CEL: nothing to analyse
				}
				t.Fatal(err)
			}
			a := p.Analysis()
			if a.UsesNow != tt.uses || a.Exact != tt.exact || a.Comparisons != tt.comparisons {
				t.Fatalf("analysis = %+v, want uses %v exact %v comparisons %d", a, tt.uses, tt.exact, tt.comparisons)
			}
			if !tt.exact && tt.uses && !strings.Contains(a.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", a.Reason, tt.reason)
			}
			if a.UsesNow != p.UsesNow {
				t.Errorf("UsesNow %v vs Analysis %v", p.UsesNow, a.UsesNow)
			}
		})
	}
}

// renewals is a store of accounts renewing at whole instants around now.
func renewals(t testing.TB) *profile.Namespace {
	n := profile.NewStore().Namespace("renewals")
	load(t, n, "users", usersSpec, userFields,
		[]any{"u1", "a1", "decision_maker", "4", now.Add(-10 * 24 * time.Hour), "sso"},
		[]any{"u2", "a2", "decision_maker", "4", now.Add(-40 * 24 * time.Hour), ""},
		[]any{"u3", "a3", "champion", "9", nil, ""},
		[]any{"u4", "", "decision_maker", "1", now, ""},
	)
	load(t, n, "accounts", accountsSpec, accountFields,
		[]any{"a1", "enterprise", "1", now.Add(100 * 24 * time.Hour)}, // enters the 90-day window in 10 days
		[]any{"a2", "enterprise", "1", now.Add(30 * 24 * time.Hour)},  // already in it
		[]any{"a3", "smb", "1", now.Add(200 * 24 * time.Hour)},        // enters in 110 days
	)
	return n
}

func TestNextChange(t *testing.T) {
	n := renewals(t)
	day := 24 * time.Hour
	tests := []struct {
		expr string
		next time.Duration // after now; 0: none
	}{
		{expr: atRisk, next: 10 * day}, // a1 enters the window (a3 later)
		{expr: `account.renewalDate - now < duration("2160h")`, next: 10*day + time.Nanosecond},
		{expr: `account.renewalDate < now + duration("2160h")`, next: 10*day + time.Nanosecond},
		{expr: `account.renewalDate <= now + duration("2160h")`, next: 10 * day},
		{expr: `now > account.renewalDate`, next: 30*day + time.Nanosecond},
		{expr: `now >= account.renewalDate`, next: 30 * day},
		{expr: `now - user.lastLogin > duration("720h")`, next: 20*day + time.Nanosecond}, // u1 (u2 is past, u4 in 30 days)
		{expr: `now - user.lastLogin >= duration("720h")`, next: 20 * day},
		{expr: `!(now - user.lastLogin >= duration("720h"))`, next: 20 * day},
		{expr: `now == account.renewalDate`, next: 30 * day},
		{expr: `user.lastLogin == now`, next: time.Nanosecond}, // u4: true now, false a nanosecond later
		{expr: `account.renewalDate < now`},                    // every renewal is in the future... and never flips back: see below
		{expr: `now - user.lastLogin > now - account.renewalDate`},
		{expr: `user.nps <= 6`},
		{expr: `account.renewalDate - now <= duration("-1h")`, next: 30*day + time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			n.Read(nil, func(v *profile.View) {
				p, err := Compile(tt.expr, v.Schema())
				if err != nil {
					t.Fatal(err)
				}
				next, ok := p.NewEvaluator(v, now).NextChange()
				want := now.Add(tt.next)
				if tt.expr == `account.renewalDate < now` {
					want, tt.next = now.Add(30*day+time.Nanosecond), 1 // a2's renewal passes first
				}
				if tt.next == 0 {
					if ok {
						t.Fatalf("next change %s, want none", next)
					}
					return
				}
				if !ok || !next.Equal(want) {
					t.Fatalf("next change %s (%v), want %s", next, ok, want)
				}
				assertSteady(t, v, p, now, next)
			})
		})
	}
}

// assertSteady checks that no profile's result changes on [from, until): just
// after from, half way, and a nanosecond before until.
func assertSteady(t *testing.T, v *profile.View, p *Program, from, until time.Time) {
	t.Helper()
	base := results(v, p, from)
	for _, at := range []time.Time{from.Add(time.Nanosecond), from.Add(until.Sub(from) / 2), until.Add(-time.Nanosecond)} {
		if at.Before(from) || !at.Before(until) {
			continue
		}
		if got := results(v, p, at); got != base {
			t.Fatalf("results changed at %s, before the next change %s:\n%s\nvs at %s:\n%s", at, until, got, from, base)
		}
	}
}

func results(v *profile.View, p *Program, at time.Time) string {
	e := p.NewEvaluator(v, at)
	var b strings.Builder
	for u := range v.Users() {
		ok, err := e.Match(u)
		fmt.Fprintf(&b, "%s=%v/%v ", u.ID(), ok, err != nil)
	}
	return b.String()
}

// TestNextChangeIsNeverLate generates rules with now and checks, for the
// exact ones, that no profile's result changes before the reported instant,
// and, when there is none, over the next ten years.
func TestNextChangeIsNeverLate(t *testing.T) {
	n := diverseStore(t, 60, 5, false)
	r := rand.New(rand.NewPCG(11, 11))
	exact := 0
	for i := 0; i < 900; i++ {
		data := make([]byte, 40)
		for j := range data {
			data[j] = byte(r.UintN(256))
		}
		if checkNextChange(t, n, rulegen.Rule(data)) {
			exact++
		}
	}
	if exact < 50 {
		t.Fatalf("only %d of 900 generated rules were exact", exact)
	}
}

// checkNextChange analyses expr and, if exact, checks its next change over
// the store; it reports whether the rule was exact.
func checkNextChange(t *testing.T, n *profile.Namespace, expr string) bool {
	t.Helper()
	isExact := false
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(expr, v.Schema())
		if err != nil {
			return
		}
		a := p.Analysis()
		if !a.Exact {
			return
		}
		isExact = true
		for _, at := range []time.Time{now, now.Add(2160 * time.Hour)} {
			next, ok := p.NewEvaluator(v, at).NextChange()
			if ok && !next.After(at) {
				t.Fatalf("%s: next change %s is not after %s", expr, next, at)
			}
			if !ok {
				next = at.Add(10 * 365 * 24 * time.Hour)
			}
			if base, later := results(v, p, at), results(v, p, next.Add(-time.Nanosecond)); base != later {
				t.Fatalf("%s at %s: results change before the next change %s (found %v):\n%s\n%s", expr, at, next, ok, base, later)
			}
		}
	})
	return isExact
}

// FuzzTimeAnalysis: random rules with now never make the analysis or the next
// change panic, and an exact analysis is never late.
func FuzzTimeAnalysis(f *testing.F) {
	for _, seed := range []string{"\x02\x00\x02", "\x05\x03\x02\x01\x00", "\x00\x05\x02\x00\x01\x03\x00", "\x03\x02\x00\x02\x03"} {
		f.Add([]byte(seed))
	}
	n := diverseStore(f, 60, 5, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkNextChange(t, n, rulegen.Rule(data))
	})
}
