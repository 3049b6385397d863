package rule

import (
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// Rules over user.playbooks, the Playbook controller's built-in map: they
// compile before any playbook published, match on the published state, and
// the fast paths agree with CEL's plan.
var playbookRules = []string{
	`has(user.playbooks) && "onboarding" in user.playbooks && user.playbooks["onboarding"].overdue`,
	`user.playbooks["onboarding"].overdue`, // unguarded: users without the entry are evaluation errors
	`has(user.playbooks) && user.playbooks.exists(p, user.playbooks[p].overdue)`,
	`has(user.playbooks.onboarding) && user.playbooks.onboarding.phase == "Failed"`,
	`has(user.playbooks) && "onboarding" in user.playbooks && has(user.playbooks["onboarding"].dueAt) && user.playbooks["onboarding"].dueAt < now`,
}

func TestPlaybookRules(t *testing.T) {
	n := fixture(t)
	n.Read(nil, func(v *profile.View) {
		for _, expr := range playbookRules {
			if _, err := Compile(expr, v.Schema()); err != nil {
				t.Errorf("%s does not compile before any playbook published: %v", expr, err)
			}
		}
	})
	n.PublishPlaybook("onboarding", map[string]profile.PlaybookState{
		"u1": {Phase: "Running", Step: "nudge", Overdue: true, DueAt: now.Add(-time.Hour)},
		"u2": {Phase: "Running", Step: "call", DueAt: now.Add(time.Hour)},
		"u3": {Phase: "Failed", Step: "call"},
	})
	n.PublishPlaybook("renewal", map[string]profile.PlaybookState{"u4": {Phase: "Pending", Step: "a", Overdue: true}})
	want := map[string][]string{
		playbookRules[0]: {"u1"},
		playbookRules[1]: {"u1"},
		playbookRules[2]: {"u1", "u4"},
		playbookRules[3]: {"u3"},
		playbookRules[4]: {"u1"},
	}
	for _, expr := range playbookRules {
		if got := matching(t, n, expr); !equalIDs(got, want[expr]) {
			t.Errorf("%s matches %v, want %v", expr, got, want[expr])
		}
		compareWithPlain(t, n, expr, true)
	}
}

func TestReadsUser(t *testing.T) {
	n := fixture(t)
	n.Read(nil, func(v *profile.View) {
		for expr, want := range map[string]bool{
			`has(user.playbooks) && user.playbooks.size() > 0`: true,
			`user.nps <= 6`:                false,
			`[user].exists(u, u.nps <= 6)`: true, // user as a whole reads everything
			`account.tier == "smb"`:        false,
		} {
			p, err := Compile(expr, v.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.ReadsUser(attr.PlaybooksAttr); got != want {
				t.Errorf("%s: ReadsUser(playbooks) = %v, want %v", expr, got, want)
			}
		}
	})
}

func matching(t *testing.T, n *profile.Namespace, expr string) []string {
	t.Helper()
	var ids []string
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(expr, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		e := p.NewEvaluator(v, now)
		for _, id := range v.UserIDs() {
			u, _ := v.User(id)
			if ok, _ := e.Match(u); ok {
				ids = append(ids, id)
			}
		}
	})
	return ids
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlaybookRuleErrors(t *testing.T) {
	n := fixture(t)
	n.Read(nil, func(v *profile.View) {
		for expr, want := range map[string]string{
			`user.playbooks["onboarding"].overdu`:         "undefined field 'overdu'",
			`user.playbooks["onboarding"].overdue == "y"`: "no matching overload",
			`user.playbooks["onboarding"].dueAt > 3`:      "no matching overload",
		} {
			_, err := Compile(expr, v.Schema())
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v, want %q", expr, err, want)
			}
		}
	})
}

// A rule on dueAt itself flips on the Persona controller's own clock, exactly
// at the deadline, without waiting for the playbook to republish.
func TestPlaybookDueAtIsSolvedForTime(t *testing.T) {
	n := fixture(t)
	n.PublishPlaybook("onboarding", map[string]profile.PlaybookState{"u1": {Phase: "Running", Step: "a", DueAt: now.Add(time.Hour)}})
	n.Read(nil, func(v *profile.View) {
		p, err := Compile(`has(user.playbooks) && "onboarding" in user.playbooks && has(user.playbooks["onboarding"].dueAt) && user.playbooks["onboarding"].dueAt <= now`, v.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if a := p.Analysis(); !a.Exact {
			t.Fatalf("analysis %+v: a rule on dueAt should flip exactly at it", a)
		}
		next, ok := p.NewEvaluator(v, now).NextChange()
		if !ok || !next.Equal(now.Add(time.Hour)) {
			t.Errorf("next change %v %v, want u1's dueAt %v", next, ok, now.Add(time.Hour))
		}
	})
}
