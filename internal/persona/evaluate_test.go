package persona

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

var now = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func load(t *testing.T, n *profile.Namespace, name string, spec v1alpha1.DataSourceSpec, fields []string, rows ...[]any) {
	t.Helper()
	n.Apply(profiletest.Rows(t, name, spec, fields, rows...))
}

// store: u1's account renews in 100 days (enters a 90-day window in 10), u2's
// in 30 (inside it), u3 has no account.
func store(t *testing.T) *profile.Namespace {
	n := profile.NewStore().Namespace("ns")
	load(t, n, "users", v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "role", Type: v1alpha1.TypeString}}},
		[]string{"id", "account", "role"},
		[]any{"u1", "a1", "decision_maker"}, []any{"u2", "a2", "decision_maker"}, []any{"u3", nil, "decision_maker"})
	load(t, n, "accounts", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "renewalDate", Type: v1alpha1.TypeTimestamp}}},
		[]string{"id", "renewalDate"},
		[]any{"a1", now.Add(100*24*time.Hour + 500*time.Millisecond)}, []any{"a2", now.Add(30 * 24 * time.Hour)})
	return n
}

func TestEvaluateReportsTheNextChange(t *testing.T) {
	n := store(t)
	day := 24 * time.Hour
	tests := []struct {
		rule    string
		members []string
		exact   bool
		next    time.Time // zero: none
	}{
		{rule: `account.renewalDate - now <= duration("2160h")`, members: []string{"u2"}, exact: true,
			next: now.Add(10*day + 500*time.Millisecond)},
		{rule: `account.renewalDate > now`, members: []string{"u1", "u2"}, exact: true, next: now.Add(30 * day)}, // false from the instant itself
		{rule: `user.role == "decision_maker"`, members: []string{"u1", "u2", "u3"}},
		{rule: `account.renewalDate < now - duration("3650h")`, exact: true, next: now.Add(30*day + 3650*time.Hour + time.Nanosecond)},
		{rule: `now.getDayOfWeek() == 1 && has(account.renewalDate)`, members: []string{"u1", "u2"}}, // a Monday; not solvable
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			n.Read(nil, func(v *profile.View) {
				c, err := Compile(&v1alpha1.PersonaSpec{Rule: tt.rule}, v.Schema())
				if err != nil {
					t.Fatal(err)
				}
				ev := Evaluate(v, c, now, time.Now)
				var members []string
				for _, id := range v.UserIDs() {
					if _, ok := ev.Matching[id]; ok {
						members = append(members, id)
					}
				}
				if fmt.Sprint(members) != fmt.Sprint(tt.members) {
					t.Errorf("members %v, want %v", members, tt.members)
				}
				if ev.Timing.Exact != tt.exact || !ev.NextChange.Equal(tt.next) {
					t.Fatalf("exact %v next %s, want %v %s", ev.Timing.Exact, ev.NextChange, tt.exact, tt.next)
				}
			})
		})
	}
}

func TestRequeueAfter(t *testing.T) {
	refresh := 10 * time.Minute
	tests := []struct {
		name       string
		next       time.Time
		took       time.Duration
		fullDue    time.Time
		want       time.Duration
		wantStatus time.Time
	}{
		{name: "no change by time", want: refresh},
		{name: "before the refresh", next: now.Add(4 * time.Minute), want: 4 * time.Minute, wantStatus: now.Add(4 * time.Minute)},
		{name: "rounded up to the second", next: now.Add(4*time.Minute + time.Nanosecond), want: 4*time.Minute + time.Second,
			wantStatus: now.Add(4*time.Minute + time.Second)},
		{name: "after the refresh", next: now.Add(90 * 24 * time.Hour), want: refresh, wantStatus: now.Add(90 * 24 * time.Hour)},
		{name: "due now: no sooner than a second", next: now.Add(time.Millisecond), want: time.Second, wantStatus: now.Add(time.Second)},
		{name: "already past (clock skew): no hot loop", next: now.Add(-time.Hour), want: MinRequeue, wantStatus: now.Add(-time.Hour)},
		{name: "no sooner than ten evaluations", next: now.Add(2 * time.Second), took: 500 * time.Millisecond, want: 5 * time.Second,
			wantStatus: now.Add(2 * time.Second)},
		{name: "nor later than the refresh", next: now.Add(2 * time.Second), took: 2 * time.Minute, want: refresh,
			wantStatus: now.Add(2 * time.Second)},
		{name: "a full evaluation due for insights comes first", next: now.Add(4 * time.Minute), fullDue: now.Add(30 * time.Second),
			want: 30 * time.Second, wantStatus: now.Add(4 * time.Minute)},
		{name: "a full evaluation already due: no hot loop", fullDue: now.Add(-time.Second), want: MinRequeue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Evaluation{NextChange: tt.next, Duration: tt.took, FullDuration: tt.took}
			if got := RequeueAfter(ev, now, refresh, tt.fullDue); got != tt.want {
				t.Errorf("RequeueAfter = %s, want %s", got, tt.want)
			}
			var p v1alpha1.Persona
			Record(&p, Outcome{Eval: ev, Now: now})
			switch got := p.Status.NextEvaluationTime; {
			case tt.wantStatus.IsZero() && got != nil:
				t.Errorf("nextEvaluationTime = %s, want unset", got)
			case !tt.wantStatus.IsZero() && (got == nil || !got.Time.Equal(tt.wantStatus)):
				t.Errorf("nextEvaluationTime = %v, want %s", got, tt.wantStatus)
			}
		})
	}
}

func TestCompiledReadsUser(t *testing.T) {
	n := store(t)
	var s profile.Schema
	n.Read(nil, func(v *profile.View) { s = v.Schema() })
	reads := `has(user.playbooks) && "x" in user.playbooks`
	for name, tc := range map[string]struct {
		spec v1alpha1.PersonaSpec
		want bool
	}{
		"rule reads it":       {v1alpha1.PersonaSpec{Rule: reads}, true},
		"an insight reads it": {v1alpha1.PersonaSpec{Rule: `user.role == "x"`, Insights: []v1alpha1.InsightSpec{{Name: "i", Type: v1alpha1.InsightTopValues, Expression: `has(user.playbooks) ? user.playbooks.size() : 0`}}}, true},
		"neither reads it":    {v1alpha1.PersonaSpec{Rule: `user.role == "x"`, Insights: []v1alpha1.InsightSpec{{Name: "i", Type: v1alpha1.InsightTopValues, Expression: "user.role"}}}, false},
	} {
		c, err := Compile(&tc.spec, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := c.ReadsUser(attr.PlaybooksAttr); got != tc.want {
			t.Errorf("%s: ReadsUser(playbooks) = %v, want %v", name, got, tc.want)
		}
	}
}

// An evaluation stopped by its context reads every profile left as an error:
// the controller checks the context and applies nothing of it (Ready=False,
// EvaluationTimeout), never a mass exit.
func TestEvaluateStopsWithItsContext(t *testing.T) {
	n := store(t)
	n.Read(nil, func(v *profile.View) {
		c, err := Compile(&v1alpha1.PersonaSpec{Rule: `user.role != user.id`}, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if ev := Evaluate(v, c.WithContext(context.Background()), now, time.Now); len(ev.Matching) != 3 || ev.Errors != 0 {
			t.Fatalf("live context: %d members, %d errors", len(ev.Matching), ev.Errors)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ev := Evaluate(v, c.WithContext(ctx), now, time.Now)
		if len(ev.Matching) != 0 || ev.Errors != 3 {
			t.Fatalf("stopped: %d members, %d errors; want every profile an error", len(ev.Matching), ev.Errors)
		}
	})
}
