package profile

import (
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// source maps records through a real Mapper into SourceData.
func source(t testing.TB, name string, priority int32, spec v1alpha1.DataSourceSpec, records ...map[string]any) *SourceData {
	t.Helper()
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(name, priority, m, len(records))
	for i, r := range records {
		mapped, err := m.Map(record(int64(i+1), r))
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		b.Add(mapped)
	}
	return b.Finish()
}

var (
	usersSpec = v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "role", Type: v1alpha1.TypeString}},
	}
	surveySpec = v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "role", Type: v1alpha1.TypeInt}},
	}
	accountsSpec = v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString}},
	}
	ticketsSpec = v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "user"},
		Signal:     &v1alpha1.SignalSpec{Attribute: "requests", ValueAttribute: "feature"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}},
	}
)

// get reads an attribute as a plain Go value (the store holds CEL values).
func get(t *testing.T, n *Namespace, sources []string, uid, name string) any {
	t.Helper()
	out := getCEL(t, n, sources, uid, name)
	if v, ok := out.(ref.Val); ok {
		native, err := attr.FromCEL(v)
		if err != nil {
			t.Fatal(err)
		}
		return native
	}
	return out
}

func getCEL(t *testing.T, n *Namespace, sources []string, uid, name string) any {
	t.Helper()
	var out any
	n.Read(sources, func(v *View) {
		u, ok := v.User(uid)
		if !ok {
			out = "<no user>"
			return
		}
		if acc, found := "account.", len(name) > 8 && name[:8] == "account."; found {
			a, ok := u.Account()
			if !ok {
				out = "<no account>"
				return
			}
			out, _ = a.Get(name[len(acc):])
			return
		}
		out, _ = u.Get(name)
	})
	return out
}

func TestMergePrecedence(t *testing.T) {
	n := NewStore().Namespace("team-a")
	n.Apply(source(t, "crm", 0, usersSpec,
		map[string]any{"id": "u1", "account": "acme", "nps": "9", "role": "champion"},
		map[string]any{"id": "u2", "account": "acme", "nps": "3"}))
	n.Apply(source(t, "survey", 10, surveySpec,
		map[string]any{"id": "u1", "nps": "4", "role": "7"}, // role has another type: conflict
		map[string]any{"id": "u3", "nps": "10"}))
	n.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "acme", "tier": "enterprise"}))
	n.Apply(source(t, "requests", 0, ticketsSpec,
		map[string]any{"user": "u1", "feature": "sso"}, map[string]any{"user": "u1", "feature": "audit_log"},
		map[string]any{"user": "ghost", "feature": "sso"}))

	tests := []struct {
		uid, attr string
		want      any
	}{
		{"u1", "nps", int64(4)},                       // survey has higher priority
		{"u2", "nps", int64(3)},                       // only crm has u2
		{"u1", "role", int64(7)},                      // survey (higher priority) fixes role as Int; crm's String role is a conflict and dropped
		{"u1", "accountId", "acme"},                   // from crm, the only source with an account key
		{"u3", "accountId", ""},                       // survey-only user: no account
		{"u1", "account.tier", "enterprise"},          // joined through the account id
		{"u1", "requests", []any{"sso", "audit_log"}}, // signal list in record order
		{"u2", "requests", nil},                       // no signals
		{"ghost", "requests", "<no user>"},            // signals alone make no profile
		{"u3", "account.tier", "<no account>"},
	}
	for _, tt := range tests {
		if got := get(t, n, nil, tt.uid, tt.attr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s.%s = %#v, want %#v", tt.uid, tt.attr, got, tt.want)
		}
	}
	if got := n.Conflicts(); len(got["crm"]) != 1 || len(got) != 1 {
		t.Errorf("conflicts = %v, want one for crm's role", got)
	}

	// Restricting the view to crm changes precedence and membership.
	if got := get(t, n, []string{"crm", "accounts"}, "u1", "nps"); got != int64(9) {
		t.Errorf("crm-only nps = %v, want 9", got)
	}
	if got := get(t, n, nil, "u2", "role"); got != nil {
		t.Errorf("u2.role = %v: crm's conflicting role must not be used", got)
	}
	if got := get(t, n, []string{"crm"}, "u1", "role"); got != "champion" {
		t.Errorf("crm-only role = %v, want champion", got)
	}
	if got := get(t, n, []string{"crm"}, "u3", "nps"); got != "<no user>" {
		t.Errorf("u3 outside crm = %v", got)
	}
	n.Read(nil, func(v *View) {
		if ids := v.UserIDs(); !reflect.DeepEqual(ids, []string{"u1", "u2", "u3"}) {
			t.Errorf("UserIDs = %v", ids)
		}
		s := v.Schema()
		if s.User["nps"] != attr.Int || s.User["role"] != attr.Int || s.User["requests"] != attr.List || s.Account["tier"] != attr.String || s.User["id"] != attr.String {
			t.Errorf("schema = %+v", s)
		}
	})
}

func TestApplyReplacesAndRemoveDrops(t *testing.T) {
	n := NewStore().Namespace("ns")
	g1 := n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u1", "nps": "1"}, map[string]any{"id": "u2", "nps": "2"}))
	g2 := n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u2", "nps": "5"}))
	if g2 <= g1 {
		t.Fatalf("generation did not increase: %d then %d", g1, g2)
	}
	if got := get(t, n, nil, "u1", "nps"); got != "<no user>" {
		t.Errorf("u1 after re-sync without it = %v", got)
	}
	if got := get(t, n, nil, "u2", "nps"); got != int64(5) {
		t.Errorf("u2 = %v, want 5", got)
	}
	if _, recs, ok := n.Loaded("crm"); !ok || recs != 1 {
		t.Errorf("Loaded = %d %v", recs, ok)
	}
	n.Remove("crm")
	if _, _, ok := n.Loaded("crm"); ok {
		t.Error("still loaded after Remove")
	}
	n.Read(nil, func(v *View) {
		if len(v.UserIDs()) != 0 || len(n.users) != 0 {
			t.Errorf("users left after Remove: %v", v.UserIDs())
		}
	})
	// The slot is reused.
	n.Apply(source(t, "other", 0, usersSpec, map[string]any{"id": "u9"}))
	if len(n.sources) != 1 {
		t.Errorf("slots = %d, want the freed one reused", len(n.sources))
	}
}

func TestDigestIgnoresOrderButNotContent(t *testing.T) {
	a := source(t, "s", 0, usersSpec, map[string]any{"id": "u1", "nps": "1"}, map[string]any{"id": "u2", "nps": "2"})
	b := source(t, "s", 0, usersSpec, map[string]any{"id": "u2", "nps": "2"}, map[string]any{"id": "u1", "nps": "1"})
	c := source(t, "s", 0, usersSpec, map[string]any{"id": "u2", "nps": "2"}, map[string]any{"id": "u1", "nps": "3"})
	if a.Digest != b.Digest {
		t.Errorf("order changed the digest: %s vs %s", a.Digest, b.Digest)
	}
	if a.Digest == c.Digest {
		t.Error("content change kept the digest")
	}
}
