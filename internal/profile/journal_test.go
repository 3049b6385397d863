package profile

import (
	"fmt"
	"slices"
	"testing"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var (
	journalUsers = v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "role", Type: v1alpha1.TypeString}}}
	journalAccounts = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString}}}
)

func changesSince(n *Namespace, gen uint64) Changes {
	var c Changes
	n.Read(nil, func(v *View) { c = v.Changes(gen) })
	slices.Sort(c.Users)
	slices.Sort(c.Accounts)
	return c
}

func TestChangesRecordWhatEachChangeTouched(t *testing.T) {
	n := NewStore().Namespace("ns")
	users := func(roles ...string) *SourceData {
		var recs []map[string]any
		for i, r := range roles {
			if r != "" {
				recs = append(recs, map[string]any{"id": fmt.Sprintf("u%d", i), "account": "a1", "role": r})
			}
		}
		return source(t, "users", 0, journalUsers, recs...)
	}
	g0 := n.Generation()
	g1 := n.Apply(users("admin", "user", "user"))
	if c := changesSince(n, g0); !c.All {
		t.Fatalf("a new source changes how every profile merges: %+v", c)
	}
	// A full sync with one row changed and one gone.
	g2 := n.Apply(users("admin", "admin", ""))
	if c := changesSince(n, g1); c.All || !slices.Equal(c.Users, []string{"u1", "u2"}) || len(c.Accounts) != 0 {
		t.Fatalf("full sync: %+v, want users u1 u2", c)
	}
	// The same data again: nothing changed, though the generation moved.
	g3 := n.Apply(users("admin", "admin", ""))
	if c := changesSince(n, g2); c.All || c.Len() != 0 {
		t.Fatalf("identical sync: %+v, want no change", c)
	}
	// An incremental sync: one upsert, one delete.
	n.ApplyDelta(delta(t, "users", journalUsers,
		op{rec: map[string]any{"id": "u3", "account": "a2", "role": "user"}}, op{rec: map[string]any{"id": "u0"}, del: true}))
	if c := changesSince(n, g3); c.All || !slices.Equal(c.Users, []string{"u0", "u3"}) {
		t.Fatalf("delta: %+v, want users u0 u3", c)
	}
	// Changes accumulate, each key once.
	if c := changesSince(n, g1); c.All || !slices.Equal(c.Users, []string{"u0", "u1", "u2", "u3"}) {
		t.Fatalf("since g1: %+v", c)
	}
	// Accounts, and the users they reach.
	g4 := n.Apply(source(t, "accounts", 0, journalAccounts, map[string]any{"id": "a1", "tier": "smb"}))
	g5 := n.Apply(source(t, "accounts", 0, journalAccounts, map[string]any{"id": "a1", "tier": "enterprise"}, map[string]any{"id": "a2", "tier": "smb"}))
	c := changesSince(n, g4)
	if c.All || len(c.Users) != 0 || !slices.Equal(c.Accounts, []string{"a1", "a2"}) {
		t.Fatalf("accounts sync: %+v, want accounts a1 a2", c)
	}
	n.Read(nil, func(v *View) {
		got := v.UsersOfAccounts([]string{"a2"})
		if !slices.Equal(got, []string{"u3"}) {
			t.Errorf("users of a2 = %v, want [u3]", got)
		}
	})
	// Playbook state changes only the users whose runs changed.
	n.PublishPlaybook("p", map[string]PlaybookState{"u1": {Phase: "Running"}, "u3": {Phase: "Running"}})
	g6 := n.Generation()
	n.PublishPlaybook("p", map[string]PlaybookState{"u1": {Phase: "Succeeded"}, "u3": {Phase: "Running"}})
	if c := changesSince(n, g6); c.All || !slices.Equal(c.Users, []string{"u1"}) {
		t.Fatalf("playbook publish: %+v, want user u1", c)
	}
	// A source removed, or declaring other attributes, changes everything.
	g7 := n.Generation()
	n.Remove("accounts")
	if c := changesSince(n, g7); !c.All {
		t.Fatalf("removal: %+v, want All", c)
	}
	if c := changesSince(n, g5); !c.All {
		t.Fatalf("since before a removal: %+v, want All", c)
	}
	g8 := n.Generation()
	other := journalUsers
	other.Attributes = append([]v1alpha1.AttributeMapping{{Name: "plan", Type: v1alpha1.TypeString}}, other.Attributes...)
	n.Apply(source(t, "users", 0, other, map[string]any{"id": "u1", "plan": "x", "role": "admin"}))
	if c := changesSince(n, g8); !c.All {
		t.Fatalf("new declarations: %+v, want All", c)
	}
	// A generation this store never had is not trusted.
	if c := changesSince(n, n.Generation()+5); !c.All {
		t.Fatalf("future generation: %+v, want All", c)
	}
}

func TestJournalIsBounded(t *testing.T) {
	var j journal
	keys := func(n int, prefix string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}
	j.record(1, false, keys(maxJournalKeys/2, "a"), nil, nil)
	j.record(2, false, keys(maxJournalKeys/2, "b"), nil, nil)
	if c := j.since(0); c.All || len(c.Users) != maxJournalKeys {
		t.Fatalf("within the bound: all %v, %d users", c.All, len(c.Users))
	}
	j.record(3, false, keys(10, "c"), nil, nil)
	if j.keys > maxJournalKeys {
		t.Fatalf("journal holds %d keys, bound %d", j.keys, maxJournalKeys)
	}
	if c := j.since(0); !c.All {
		t.Fatal("a generation the journal dropped must read as All")
	}
	if c := j.since(1); c.All || len(c.Users) != maxJournalKeys/2+10 {
		t.Fatalf("since 1: all %v, %d users", c.All, len(c.Users))
	}
	// One change larger than the bound is All.
	j.record(4, false, keys(maxJournalKeys+1, "d"), nil, nil)
	if c := j.since(3); !c.All {
		t.Fatal("an oversized change must read as All")
	}
	if c := j.since(4); c.All || c.Len() != 0 {
		t.Fatalf("since the oversized change: %+v", c)
	}
}

func TestUsersAdded(t *testing.T) {
	n := NewStore().Namespace("ns")
	n.Apply(source(t, "users", 0, journalUsers, map[string]any{"id": "u1", "role": "a"}, map[string]any{"id": "u2", "role": "a"}))
	next := source(t, "users", 0, journalUsers, map[string]any{"id": "u2", "role": "b"}, map[string]any{"id": "u3", "role": "a"},
		map[string]any{"id": "u4", "role": "a"})
	if known, added := n.UsersAdded(next, nil); known != 2 || added != 2 {
		t.Fatalf("full sync: known %d added %d, want 2 and 2 (u3, u4)", known, added)
	}
	d := delta(t, "users", journalUsers, op{rec: map[string]any{"id": "u1", "role": "c"}},
		op{rec: map[string]any{"id": "u9", "role": "c"}}, op{rec: map[string]any{"id": "u8"}, del: true})
	if known, added := n.UsersAdded(nil, d); known != 2 || added != 1 {
		t.Fatalf("delta: known %d added %d, want 2 and 1 (u9)", known, added)
	}
}
