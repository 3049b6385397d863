package rule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

var now = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func load(t testing.TB, n *profile.Namespace, name string, spec v1alpha1.DataSourceSpec, fields []string, rows ...[]any) {
	t.Helper()
	n.Apply(profiletest.Rows(t, name, spec, fields, rows...))
}

var (
	usersSpec = v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"}, Attributes: []v1alpha1.AttributeMapping{
		{Name: "role", Type: v1alpha1.TypeString}, {Name: "nps", Type: v1alpha1.TypeInt},
		{Name: "lastLogin", Type: v1alpha1.TypeTimestamp}, {Name: "features", Type: v1alpha1.TypeList},
	}}
	userFields   = []string{"id", "account", "role", "nps", "lastLogin", "features"}
	accountsSpec = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"}, Attributes: []v1alpha1.AttributeMapping{
		{Name: "tier", Type: v1alpha1.TypeString}, {Name: "arr", Type: v1alpha1.TypeDouble}, {Name: "renewalDate", Type: v1alpha1.TypeTimestamp},
	}}
	accountFields = []string{"id", "tier", "arr", "renewalDate"}
)

func fixture(t testing.TB) *profile.Namespace {
	n := profile.NewStore().Namespace("ns")
	load(t, n, "users", usersSpec, userFields,
		[]any{"u1", "acme", "decision_maker", "4", "2026-11-20T00:00:00Z", "sso;audit_log"},
		[]any{"u2", "acme", "champion", "9", "2026-11-22T00:00:00Z", "reports"},
		[]any{"u3", "initech", "decision_maker", "", "2026-01-01T00:00:00Z", ""}, // no NPS answer
		[]any{"u4", "", "decision_maker", "2", "2026-11-01T00:00:00Z", ""},       // no account
	)
	load(t, n, "accounts", accountsSpec, accountFields,
		[]any{"acme", "enterprise", "250000", "2027-01-15T00:00:00Z"},
		[]any{"initech", "smb", "1000", "2027-09-01T00:00:00Z"},
	)
	return n
}

const atRisk = `account.tier == "enterprise" && account.renewalDate - now <= duration("2160h") && user.role == "decision_maker" && user.nps <= 6`

func TestCompileErrors(t *testing.T) {
	n := fixture(t)
	var schema Schema
	n.Read(nil, func(v *profile.View) { schema = v.Schema() })
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"syntax error with position", "user.nps <= ", []string{"Syntax error", "1:13"}},
		{"unknown attribute", "user.npss <= 6", []string{"undefined field 'npss'", "1:5"}},
		{"unknown account attribute", `account.plan == "pro"`, []string{"undefined field 'plan'"}},
		{"timestamp compared with a string", `user.lastLogin > "2026-01-01"`, []string{"no matching overload", "_>_"}},
		{"not a bool", "user.nps", []string{"must be a bool expression, but it is int"}},
		{"unknown variable", "customer.tier == 'x'", []string{"undeclared reference to 'customer'"}},
		{"cost over the limit", "user.features.all(a, user.features.all(b, user.features.all(c, a + b + c != '')))", []string{"exceeds the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.expr, schema)
			if err == nil {
				t.Fatal("want a compile error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	n := fixture(t)
	tests := []struct {
		expr    string
		members []string
		errors  int
		usesNow bool
	}{
		{expr: atRisk, members: []string{"u1"}, errors: 1, usesNow: true}, // u4 lacks an account; u3 fails the tier first
		{expr: `has(user.nps) && user.nps <= 6`, members: []string{"u1", "u4"}},
		{expr: `"audit_log" in user.features`, members: []string{"u1"}, errors: 2}, // empty cells are absent
		{expr: `!has(user.features) || size(user.features) == 0`, members: []string{"u3", "u4"}},
		{expr: `user.id.startsWith("u") && user.accountId == "acme"`, members: []string{"u1", "u2"}, errors: 1},
		{expr: `has(account.tier) && account.tier == "smb"`, members: []string{"u3"}},
		{expr: `now - user.lastLogin > duration("720h")`, members: []string{"u3"}, usesNow: true},
		{expr: `account.id == "initech"`, members: []string{"u3"}, errors: 1},
		{expr: `account.arr > 100000 && user.nps > 5`, members: []string{"u2"}, errors: 0}, // false && error is false
		{expr: `user.nps > 5.5`, members: []string{"u2"}, errors: 1},                       // int vs double compares
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			n.Read(nil, func(v *profile.View) {
				p, err := Compile(tt.expr, v.Schema())
				if err != nil {
					t.Fatal(err)
				}
				if p.UsesNow != tt.usesNow {
					t.Errorf("UsesNow = %v", p.UsesNow)
				}
				e := p.NewEvaluator(v, now)
				var members []string
				errs := 0
				for _, id := range v.UserIDs() {
					u, _ := v.User(id)
					ok, err := e.Match(u)
					if err != nil {
						errs++
					}
					if ok {
						members = append(members, id)
					}
				}
				if fmt.Sprint(members) != fmt.Sprint(tt.members) || errs != tt.errors {
					t.Fatalf("members %v with %d errors, want %v with %d", members, errs, tt.members, tt.errors)
				}
			})
		})
	}
}

func TestValueExpressions(t *testing.T) {
	n := fixture(t)
	n.Read(nil, func(v *profile.View) {
		p, err := CompileValue(`has(user.features) ? user.features : []`, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		u, _ := v.User("u1")
		out, err := p.NewEvaluator(v, now).Eval(u)
		if err != nil {
			t.Fatal(err)
		}
		native, err := attr.FromCEL(out)
		if err != nil || fmt.Sprint(native) != "[sso audit_log]" {
			t.Fatalf("value = %v, %v", native, err)
		}
	})
}

// Sum, Average, Min and Max insights must give numbers: a string or a list is
// rejected when compiled, with the type CEL found.
func TestCompileNumber(t *testing.T) {
	n := fixture(t)
	var schema Schema
	n.Read(nil, func(v *profile.View) { schema = v.Schema() })
	for _, tt := range []struct {
		expr string
		want string // "" when it compiles
	}{
		{"user.nps", ""},
		{"account.arr", ""},
		{"account.arr * 2.0", ""},
		{"size(user.features)", ""},
		{"dyn(user.role)", ""}, // dyn: checked per value
		{"user.role", "must be a number (int, uint or double), but it is string"},
		{"user.features", "must be a number (int, uint or double), but it is list"},
		{"user.lastLogin", "but it is google.protobuf.Timestamp"},
		{"user.nps <= 6", "but it is bool"},
	} {
		_, err := CompileNumber(tt.expr, schema)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.expr, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.expr, err, tt.want)
		}
	}
}

// A rule compiled against one schema keeps working when the store's schema gains
// attributes, and fails cleanly (per profile) when it loses one.
func TestSchemaDrift(t *testing.T) {
	n := fixture(t)
	var p *Program
	n.Read(nil, func(v *profile.View) {
		var err error
		if p, err = Compile(`user.nps <= 6`, v.Schema()); err != nil {
			t.Fatal(err)
		}
	})
	n.Remove("users")
	load(t, n, "users", v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "email", Type: v1alpha1.TypeString}}},
		[]string{"id", "email"}, []any{"u9", "x@y"})
	n.Read(nil, func(v *profile.View) {
		u, _ := v.User("u9")
		if ok, err := p.NewEvaluator(v, now).Match(u); ok || err == nil {
			t.Fatalf("match = %v, %v; want a per-profile error", ok, err)
		}
	})
}
