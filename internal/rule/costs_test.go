package rule

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// bigRole is a namespace with one user whose role is a 4 MiB string of 'a'.
func bigRole(t testing.TB) *profile.Namespace {
	n := profile.NewStore().Namespace("big")
	load(t, n, "users", usersSpec, userFields, []any{"u1", "", strings.Repeat("a", 4<<20), "1", "2026-11-20T00:00:00Z", "sso"})
	return n
}

// evalBytes evaluates expr for the namespace's one profile and returns the
// bytes allocated by the evaluation and its error.
func evalBytes(t *testing.T, n *profile.Namespace, expr string) (allocated uint64, err error) {
	t.Helper()
	n.Read(nil, func(v *profile.View) {
		p, cerr := Compile(expr, v.Schema())
		if cerr != nil {
			t.Fatalf("compile %s: %v", expr, cerr)
		}
		var u profile.User
		for x := range v.Users() {
			u = x
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		// The Evaluator is made inside: it evaluates single-attribute clauses
		// once per distinct value (table.go).
		_, err = p.NewEvaluator(v, now).Match(u)
		runtime.ReadMemStats(&after)
		allocated = after.TotalAlloc - before.TotalAlloc
	})
	return allocated, err
}

// The rule of issue 13 row 2: it passes the compile-time cost check, and one
// evaluation over a 4 MiB value allocated 512 MiB. It now fails before
// building the string, and allocates almost nothing.
func TestAmplifyingCallStopsBeforeAllocating(t *testing.T) {
	n := bigRole(t)
	tests := []struct{ name, expr, want string }{
		{"replace", `user.role.replace("a", "` + strings.Repeat("a", 64) + `").size() > 0`, "replace would build a value of about 268435456 bytes"},
		{"replace limited by n", `user.role.replace("a", "aaaa", 3000000).size() > 0`, "replace would build"},
		{"split into runes", `user.role.split("").size() > 0`, "split would build"},
		{"join", `[user.role, user.role, user.role].join().size() > 0`, "join would build"},
		{"format", `"%s%s%s".format([user.role, user.role, user.role]).size() > 0`, "format would build"},
		{"quote", `strings.quote(user.role).size() > 0`, "strings.quote would build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocated, err := evalBytes(t, n, tt.expr)
			t.Logf("allocated %d bytes, error %v", allocated, err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if allocated > 1<<20 {
				t.Errorf("the evaluation allocated %d bytes, want under 1 MiB", allocated)
			}
		})
	}
}

// A rule whose calls each stay under MaxResultBytes but whose evaluation as a
// whole costs more than CostLimit fails on the runtime limit, and allocates a
// bounded amount.
func TestRuntimeCostLimit(t *testing.T) {
	n := bigRole(t)
	allocated, err := evalBytes(t, n, `(user.role + user.role + user.role + user.role + user.role + user.role).size() > 0`)
	t.Logf("allocated %d bytes, error %v", allocated, err)
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("error %v, want the cost limit", err)
	}
	if allocated > 64<<20 {
		t.Errorf("the evaluation allocated %d bytes, want under 64 MiB", allocated)
	}
}

// Guarded and tracked calls give what CEL gives on values under the limits.
func TestGuardedCallsUnderTheLimits(t *testing.T) {
	n := fixture(t)
	for _, expr := range []string{
		`user.role.replace("_", "-") == "decision-maker"`,
		`user.role.replace("_", "--", 1) == "decision--maker"`,
		`user.role.split("_") == ["decision", "maker"]`,
		`user.role.split("_", 1) == ["decision_maker"]`,
		`["a", user.role].join("/") == "a/decision_maker"`,
		`"%s:%d".format([user.role, user.nps]) == "decision_maker:4"`,
		`strings.quote(user.role) == "\"decision_maker\""`,
		`user.role + "!" == "decision_maker!"`,
		`user.role.upperAscii() == "DECISION_MAKER"`,
	} {
		n.Read(nil, func(v *profile.View) {
			p, err := Compile(expr, v.Schema())
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			e := p.NewEvaluator(v, now)
			for u := range v.Users() {
				if u.ID() != "u1" {
					continue
				}
				if ok, err := e.Match(u); err != nil || !ok {
					t.Errorf("%s for u1: %v, %v; want true", expr, ok, err)
				}
			}
		})
	}
}

func TestNeedsCostTracking(t *testing.T) {
	n := fixture(t)
	var schema Schema
	n.Read(nil, func(v *profile.View) { schema = v.Schema() })
	tests := []struct {
		expr    string
		tracked bool
	}{
		{atRisk, false},
		{`user.nps <= 6 || user.role == "champion"`, false},
		{`user.role.startsWith("dec") && !(user.role in ["a", "b"]) && size(user.features) > 0`, false},
		{`int(user.role) > 3 || string(user.nps) == "4" || user.lastLogin.getFullYear() == 2026`, false},
		{`has(user.nps) ? user.nps * 2 - 1 > 3 : false`, false},
		{`user.features.exists(f, f == "sso")`, true},
		{`user.role + "x" == "y"`, true},
		{`user.role.lowerAscii().trim().substring(1) == "y" && user.role.indexOf("a") > 0`, false},
		{`["a", user.role].join() == "y"`, true},
		{`user.role.matches("^d")`, false}, // a literal pattern, compiled once
		{`matches(user.role, "^d")`, false},
		{`user.role.matches(user.role)`, true},
		{`user.role.replace("a", "b") == "y"`, true},
	}
	for _, tt := range tests {
		p, err := Compile(tt.expr, schema)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if got := !p.reuseFrame; got != tt.tracked {
			t.Errorf("%s: tracked %v, want %v", tt.expr, got, tt.tracked)
		}
	}
}

// A program bound to a context fails every evaluation once the context is
// done, and evaluates as before until then.
func TestWithContext(t *testing.T) {
	n := fixture(t)
	const expr = `user.nps <= 6 || user.role == "champion"` // interpreted: no single-attribute clause
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(expr, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		live := p.WithContext(ctx).NewEvaluator(v, now)
		plain := p.NewEvaluator(v, now)
		for u := range v.Users() {
			got, gotErr := live.Match(u)
			want, wantErr := plain.Match(u)
			if got != want || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%s: %v, %v with a live context; %v, %v without", u.ID(), got, gotErr, want, wantErr)
			}
		}
		cancel()
		for u := range v.Users() {
			if _, err := live.Match(u); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s after cancel: error %v, want context.Canceled", u.ID(), err)
			}
		}
	})
}
