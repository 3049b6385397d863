package explain

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

var (
	now    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	schema = profile.Schema{
		User: map[string]attr.Type{"id": attr.String, "accountId": attr.String, "nps": attr.Int, "role": attr.String,
			"tickets": attr.List, "prefs": attr.Map, "score": attr.Double},
		Account: map[string]attr.Type{"id": attr.String, "tier": attr.String, "renewalDate": attr.Timestamp},
	}
)

func list(vs ...any) ref.Val { return types.DefaultTypeAdapter.NativeToValue(vs) }

func subject(user, account map[string]ref.Val) Subject { return Subject{User: user, Account: account} }

var (
	promoter = map[string]ref.Val{"id": types.String("u1"), "nps": types.Int(9), "role": types.String("decision_maker")}
	noNPS    = map[string]ref.Val{"id": types.String("u2"), "role": types.String("decision_maker")}
	acme     = map[string]ref.Val{"id": types.String("acme"), "tier": types.String("enterprise"),
		"renewalDate": types.Timestamp{Time: now.Add(1000 * time.Hour)}}
)

// flat lists a tree as "expression=value" lines, depth-first, with operands in
// brackets: compact enough to compare whole explanations in a table.
func flat(n queryapi.Node) []string {
	var out []string
	var walk func(n queryapi.Node, depth int)
	walk = func(n queryapi.Node, depth int) {
		line := strings.Repeat("  ", depth) + n.Expression + " = " + shown(n.Value, n.Absent, n.Error)
		var ops []string
		for _, o := range n.Operands {
			ops = append(ops, o.Expression+" = "+shown(o.Value, o.Absent, o.Error))
		}
		if len(ops) > 0 {
			line += " [" + strings.Join(ops, "; ") + "]"
		}
		out = append(out, line)
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return out
}

func shown(v string, absent bool, err string) string {
	switch {
	case absent:
		return "absent"
	case err != "":
		return "error(" + err + ")"
	}
	return v
}

func TestExplainTree(t *testing.T) {
	tests := []struct {
		name    string
		rule    string
		subj    Subject
		value   string // "" when the evaluation fails
		absent  bool   // the failure is an absent attribute
		want    []string
		wantErr string
	}{
		{
			name: "every clause true", rule: `account.tier == "enterprise" && user.nps >= 9`, subj: subject(promoter, acme), value: "true",
			want: []string{
				`account.tier == "enterprise" && user.nps >= 9 = true`,
				`  account.tier == "enterprise" = true [account.tier = "enterprise"]`,
				`  user.nps >= 9 = true [user.nps = 9]`,
			},
		},
		{
			name: "a false clause shows the value that made it false; nested && is one level",
			rule: `account.tier == "enterprise" && account.renewalDate - now <= duration("720h") && user.nps <= 6`,
			subj: subject(promoter, acme), value: "false",
			want: []string{
				`account.tier == "enterprise" && account.renewalDate - now <= duration("720h") && user.nps <= 6 = false`,
				`  account.tier == "enterprise" = true [account.tier = "enterprise"]`,
				`  account.renewalDate - now <= duration("720h") = false [account.renewalDate - now = 1000h0m0s; duration("720h") = 720h0m0s]`,
				`  user.nps <= 6 = false [user.nps = 9]`,
			},
		},
		{
			name: "an attribute the profile lacks is absent and fails the rule", rule: `user.nps <= 6`, subj: subject(noNPS, acme), absent: true,
			want: []string{`user.nps <= 6 = absent [user.nps = absent]`},
		},
		{
			name: "has() guards an absent attribute", rule: `has(user.nps) && user.nps <= 6`, subj: subject(noNPS, acme), value: "false",
			want: []string{
				`has(user.nps) && user.nps <= 6 = false`,
				`  has(user.nps) = false`,
				`  user.nps <= 6 = absent [user.nps = absent]`,
			},
		},
		{
			name: "a user without an account has every account attribute absent", rule: `account.tier == "enterprise" || user.role == "decision_maker"`,
			subj: subject(promoter, nil), value: "true",
			want: []string{
				`account.tier == "enterprise" || user.role == "decision_maker" = true`,
				`  account.tier == "enterprise" = absent [account.tier = absent]`,
				`  user.role == "decision_maker" = true [user.role = "decision_maker"]`,
			},
		},
		{
			name: "negation and ternary have children", rule: `!(user.nps > 8) ? false : user.role.startsWith("decision")`,
			subj: subject(promoter, acme), value: "true",
			want: []string{
				`!(user.nps > 8) ? false : user.role.startsWith("decision") = true`,
				`  !(user.nps > 8) = false`,
				`    user.nps > 8 = true [user.nps = 9]`,
				`  false = false`,
				`  user.role.startsWith("decision") = true [user.role = "decision_maker"]`,
			},
		},
		{
			name: "a comprehension is a leaf showing its range", rule: `user.tickets.exists(t, t == "billing")`,
			subj: subject(map[string]ref.Val{"tickets": list("sso", "billing")}, acme), value: "true",
			want: []string{`user.tickets.exists(t, t == "billing") = true [user.tickets = ["sso", "billing"]]`},
		},
		{
			name: "a runtime error other than absence is reported as an error", rule: `user.prefs.lang == "en"`,
			subj: subject(map[string]ref.Val{"prefs": types.DefaultTypeAdapter.NativeToValue(map[string]any{"tz": "UTC"})}, acme),
			want: []string{`user.prefs.lang == "en" = error(no such key: lang) [user.prefs.lang = error(no such key: lang)]`},
		},
		{name: "an unknown attribute does not compile, with its position", rule: `user.npss <= 6`, wantErr: "<input>:1:5: undefined field 'npss'"},
		{name: "a syntax error", rule: `user.nps <=`, wantErr: "<input>:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Explain(tt.rule, schema, tt.subj, now)
			if tt.wantErr != "" {
				var ce *CompileError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want a CompileError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := flat(res.Tree); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			switch {
			case tt.value != "":
				if res.Err != nil || res.Value == nil || Format(res.Value) != tt.value {
					t.Errorf("value = %v (error %v), want %s", res.Value, res.Err, tt.value)
				}
			case res.Err == nil:
				t.Errorf("value = %v, want an evaluation error", res.Value)
			case res.Tree.Absent != tt.absent:
				t.Errorf("root absent = %v, want %v", res.Tree.Absent, tt.absent)
			}
		})
	}
}

func TestExplainOperators(t *testing.T) {
	res, err := Explain(`!(user.nps > 8) ? user.nps < 3 || user.role == "x" : user.nps > 0 && user.nps < 5`, schema, subject(promoter, acme), now)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	var walk func(n queryapi.Node)
	walk = func(n queryapi.Node) {
		if n.Operator != "" {
			ops = append(ops, n.Operator)
		} else if len(n.Children) > 0 {
			t.Errorf("%q has children but no operator", n.Expression)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(res.Tree)
	if want := []string{"?:", "!", "||", "&&"}; !reflect.DeepEqual(ops, want) {
		t.Errorf("operators %v, want %v", ops, want)
	}
}

func TestExplainAttributes(t *testing.T) {
	res, err := Explain(`account.tier == "enterprise" && has(user.nps) && user.nps <= 6 && user.tickets.exists(t, t == user.role)`,
		schema, subject(noNPS, acme), now)
	if err != nil {
		t.Fatal(err)
	}
	want := []queryapi.Attribute{
		{Name: "account.tier", Value: `"enterprise"`},
		{Name: "user.nps", Absent: true},
		{Name: "user.role", Value: `"decision_maker"`},
		{Name: "user.tickets", Absent: true},
	}
	if !reflect.DeepEqual(res.Attributes, want) {
		t.Errorf("attributes = %+v, want %+v", res.Attributes, want)
	}
}

// The explanation's verdict agrees with internal/rule, which the controller
// evaluates with: the same rules, the same profiles.
func TestExplainAgreesWithTheController(t *testing.T) {
	rules := []string{
		`account.tier == "enterprise" && user.nps <= 6`,
		`has(user.nps) && user.nps <= 6`,
		`user.nps <= 6 || user.role == "decision_maker"`,
		`account.renewalDate - now <= duration("2160h") && account.renewalDate > now`,
		`user.tickets.exists(t, t == "sso") || !has(user.tickets)`,
		`user.score > 1`,
		`has(user.playbooks) && "welcome" in user.playbooks && user.playbooks["welcome"].overdue`,
		`has(user.playbooks) && user.playbooks["welcome"].step == "nudge" && user.playbooks["welcome"].dueAt < now`,
	}
	users := map[string]map[string]any{
		"u1": {"id": "u1", "account": "acme", "nps": "3", "role": "decision_maker", "score": "1.5", "tickets": []any{"sso"}},
		"u2": {"id": "u2", "account": "globex", "role": "user"},
		"u3": {"id": "u3", "nps": "9", "role": "admin"},
	}
	store := profile.NewStore()
	ns := store.Namespace("ns")
	ns.Apply(build(t, "users", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "role", Type: v1alpha1.TypeString},
			{Name: "score", Type: v1alpha1.TypeDouble}, {Name: "tickets", Type: v1alpha1.TypeList}}}, users))
	ns.Apply(build(t, "accounts", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString}, {Name: "renewalDate", Type: v1alpha1.TypeTimestamp}}},
		map[string]map[string]any{"acme": {"account": "acme", "tier": "enterprise", "renewalDate": now.Add(48 * time.Hour).Format(time.RFC3339)}}))
	ns.PublishPlaybook("welcome", map[string]profile.PlaybookState{
		"u1": {Phase: "Running", Step: "nudge", Overdue: true, DueAt: now.Add(-time.Hour)},
		"u2": {Phase: "Succeeded", Step: "nudge"},
	})
	ns.Read(nil, func(v *profile.View) {
		for _, r := range rules {
			prg, err := rule.Compile(r, v.Schema())
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			ev := prg.NewEvaluator(v, now)
			for id := range users {
				u, ok := v.User(id)
				if !ok {
					t.Fatalf("no profile %s", id)
				}
				want, _ := ev.Match(u)
				res, err := Explain(r, v.Schema(), FromProfile(u, v.Schema()), now)
				if err != nil {
					t.Fatalf("%s: %v", r, err)
				}
				got := res.Err == nil && res.Value == types.True
				if got != want {
					t.Errorf("%s for %s: explain says %v (%v), the controller %v", r, id, got, res.Err, want)
				}
			}
		}
	})
}

// build maps records through a real Mapper, as a DataSource sync does.
// build maps records keyed by id, in id order, into a source's data.
func build(t *testing.T, name string, spec v1alpha1.DataSourceSpec, records map[string]map[string]any) *profile.SourceData {
	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rows := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		rows = append(rows, records[id])
	}
	return profiletest.SourceData(t, name, spec, rows...)
}

func TestFormat(t *testing.T) {
	long := make([]any, 12)
	for i := range long {
		long[i] = int64(i)
	}
	tests := []struct {
		v    ref.Val
		want string
	}{
		{types.String(`say "hi"`), `"say \"hi\""`},
		{types.Int(-3), "-3"},
		{types.Uint(3), "3u"},
		{types.Double(2.5), "2.5"},
		{types.Bool(true), "true"},
		{types.Timestamp{Time: time.Date(2027, 1, 15, 0, 0, 0, 0, time.FixedZone("x", 3600))}, "2027-01-14T23:00:00Z"},
		{types.Duration{Duration: 90 * time.Minute}, "1h30m0s"},
		{types.Duration{Duration: 90*time.Minute + 1234567*time.Nanosecond}, "1h30m0.001s"},
		{types.NullValue, "null"},
		{types.Bytes("ab"), `b"ab"`},
		{list("a", int64(1)), `["a", 1]`},
		{list(long...), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …2 more]"},
		{types.DefaultTypeAdapter.NativeToValue(map[string]any{"b": int64(2), "a": "x"}), `{"a": "x", "b": 2}`},
		{types.StringType, "string"},
	}
	for _, tt := range tests {
		if got := Format(tt.v); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := Format(types.String(strings.Repeat("x", 1000))); len(got) > maxValueLength+len("…") {
		t.Errorf("a long value was not shortened: %d bytes", len(got))
	}
}
