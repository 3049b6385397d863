package attr

import (
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// An Events source's record (eventstore.Profile.Record) maps by userId and
// accountId; Account attributes read group traits; aggregates are typed user
// attributes.
func TestEventsSpecMapping(t *testing.T) {
	spec := &v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceEvents,
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "plan", Type: v1alpha1.TypeString},
			{Name: "industry", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount},
			{Name: "size", Type: v1alpha1.TypeInt, Entity: v1alpha1.EntityAccount, From: "employees"},
		},
		Events: &v1alpha1.EventsSource{Aggregates: []v1alpha1.EventAggregate{
			{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login", Window: "30d"},
			{Name: "lastSeen", Function: v1alpha1.AggregateLastSeen},
		}}}
	m, err := NewMapper(spec)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rec := connector.Record{Fields: []string{"userId", "accountId", "logins", "lastSeen", "plan", "group.industry", "group.employees", "industry"},
		Values: []any{"u1", "acme", int64(3), seen, "pro", "retail", float64(40), "user-level"}}
	got, err := m.Map(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.User.Key != "u1" || got.User.AccountID != "acme" || got.Account == nil || got.Account.Key != "acme" {
		t.Fatalf("mapped %+v", got)
	}
	decls := m.UserDecls()
	want := []Decl{{"plan", String}, {"logins", Int}, {"lastSeen", Timestamp}}
	if len(decls) != len(want) {
		t.Fatalf("user decls %v, want %v", decls, want)
	}
	for i := range want {
		if decls[i] != want[i] {
			t.Errorf("user decls %v, want %v", decls, want)
		}
	}
	if got.User.Values[0] != "pro" || got.User.Values[1] != int64(3) || got.User.Values[2] != seen {
		t.Errorf("user values %v", got.User.Values)
	}
	if got.Account.Values[0] != "retail" || got.Account.Values[1] != int64(40) {
		t.Errorf("account values %v: Account attributes read group traits", got.Account.Values)
	}

	spec.Events.Aggregates = append(spec.Events.Aggregates, v1alpha1.EventAggregate{Name: "plan", Function: v1alpha1.AggregateCount})
	if _, err := NewMapper(spec); err == nil || !strings.Contains(err.Error(), "also the name of an attribute") {
		t.Errorf("an aggregate named like an attribute: %v", err)
	}
}
