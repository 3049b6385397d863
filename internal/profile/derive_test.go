package profile

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/quick"
)

// viewDump renders what an evaluation reads through a view: every profile's
// id, account id, and every user and account attribute through the columns.
func viewDump(v *View) string {
	s := v.Schema()
	sorted := func(m map[string]bool) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	un, an := map[string]bool{}, map[string]bool{}
	for k := range s.User {
		un[k] = true
	}
	for k := range s.Account {
		an[k] = true
	}
	userNames, accountNames := sorted(un), sorted(an)
	uf, af := v.UserFields(userNames), v.AccountFields(accountNames)
	var lines []string
	for u := range v.Users() {
		var b strings.Builder
		fmt.Fprintf(&b, "%s@%s", u.ID(), u.AccountID())
		for j, k := range userNames {
			if val := u.Val(&uf, j); val != nil {
				fmt.Fprintf(&b, " %s=%v", k, val)
			}
		}
		for j, k := range accountNames {
			if val := u.AccountVal(&af, j); val != nil {
				fmt.Fprintf(&b, " account.%s=%v", k, val)
			}
		}
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d profiles\n%s", v.Len(), strings.Join(lines, "\n"))
}

// A snapshot derived across any sequence of changes (full syncs, deltas with
// deletes, accounts, signals, removals) reads exactly like one built from
// scratch at the same generation, columns included.
func TestDerivedSnapshotEqualsRebuilt(t *testing.T) {
	prop := func(seed int64) bool {
		rng := rand.New(rand.NewSource(seed))
		keys := 1 + rng.Intn(30)
		user := func() map[string]any {
			return map[string]any{"id": fmt.Sprintf("u%d", rng.Intn(keys)), "nps": rng.Intn(4),
				"role": []string{"a", "b", "c"}[rng.Intn(3)], "account": fmt.Sprintf("acct%d", rng.Intn(4))}
		}
		users := func() []map[string]any {
			var out []map[string]any
			for i := rng.Intn(keys + 1); i > 0; i-- {
				out = append(out, user())
			}
			return out
		}
		n := newNamespace()
		n.Apply(source(t, "users", 0, usersSpec, users()...))
		for step := 0; step < 12; step++ {
			for _, sel := range [][]string{nil, {"users", "accounts"}} {
				var prev *snapshot
				n.Read(sel, func(v *View) {
					viewDump(v) // builds every column, for the derivation to patch
					prev = v.snapshot()
				})
				change(t, rng, n, users, user)
				var derived, rebuilt string
				n.Read(sel, func(v *View) {
					c := n.journal.since(prev.gen)
					if c.All {
						return // a rebuild is the only way
					}
					d := &View{n: n, plan: v.plan, vc: v.vc}
					d.snap.Store(prev.derive(n, v.plan, c))
					r := &View{n: n, plan: v.plan, vc: &viewCache{plan: v.plan}}
					derived, rebuilt = viewDump(d), viewDump(r)
					if cached := viewDump(v); cached != rebuilt {
						t.Logf("seed %d step %d %v: cached view\n%s\nrebuilt\n%s", seed, step, sel, cached, rebuilt)
						derived = "cached view differs"
					}
				})
				if derived != rebuilt {
					t.Logf("seed %d step %d %v: derived\n%s\nrebuilt\n%s", seed, step, sel, derived, rebuilt)
					return false
				}
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

// change makes one random change to the namespace.
func change(t *testing.T, rng *rand.Rand, n *Namespace, users func() []map[string]any, user func() map[string]any) {
	switch rng.Intn(7) {
	case 0:
		n.Apply(source(t, "users", 0, usersSpec, users()...))
	case 1, 2:
		var ops []op
		for i := rng.Intn(6); i > 0; i-- {
			ops = append(ops, op{del: rng.Intn(3) == 0, rec: user()})
		}
		n.ApplyDelta(delta(t, "users", usersSpec, ops...))
	case 3:
		var rows []map[string]any
		for i := rng.Intn(5); i > 0; i-- {
			rows = append(rows, map[string]any{"account": fmt.Sprintf("acct%d", rng.Intn(5)), "tier": []string{"gold", "tin"}[rng.Intn(2)]})
		}
		n.Apply(source(t, "accounts", 0, accountsSpec, rows...))
	case 4:
		var rows []map[string]any
		for i := rng.Intn(6); i > 0; i-- {
			rows = append(rows, map[string]any{"user": fmt.Sprintf("u%d", rng.Intn(40)), "feature": []string{"sso", "api"}[rng.Intn(2)]})
		}
		n.Apply(source(t, "requests", 0, ticketsSpec, rows...))
	case 5:
		var ops []op
		for i := rng.Intn(4); i > 0; i-- {
			ops = append(ops, op{del: rng.Intn(3) == 0,
				rec: map[string]any{"account": fmt.Sprintf("acct%d", rng.Intn(5)), "tier": []string{"gold", "tin", "iron"}[rng.Intn(3)]}})
		}
		n.ApplyDelta(delta(t, "accounts", accountsSpec, ops...))
	case 6:
		if rng.Intn(3) == 0 {
			n.Remove("requests")
		}
	}
}

// A detached view is read while syncs apply changes (run with -race): it
// keeps answering for its generation, and the next read derives from it.
func TestDetachedViewDuringApply(t *testing.T) {
	n := newNamespace()
	var rows []map[string]any
	for i := range 200 {
		rows = append(rows, map[string]any{"id": fmt.Sprintf("u%d", i), "nps": i % 11, "role": "a", "account": fmt.Sprintf("acct%d", i%7)})
	}
	n.Apply(source(t, "users", 0, usersSpec, rows...))
	n.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "acct1", "tier": "gold"}))
	var d *View
	var before string
	n.Read(nil, func(v *View) { d = v.Detach(); before = viewDump(d) })
	gen := d.Generation()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			n.ApplyDelta(delta(t, "users", usersSpec, op{rec: map[string]any{"id": fmt.Sprintf("u%d", i), "nps": 3, "role": "b", "account": "acct9"}},
				op{del: true, rec: map[string]any{"id": fmt.Sprintf("u%d", 100+i)}}))
			n.ApplyDelta(delta(t, "accounts", accountsSpec, op{rec: map[string]any{"account": "acct1", "tier": fmt.Sprint(i)}}))
		}
	}()
	for range 20 {
		if got := viewDump(d); got != before {
			t.Fatalf("a detached view changed while syncs applied:\n%s\nwas\n%s", got, before)
		}
		if _, ok := d.User("u150"); !ok {
			t.Fatal("u150, which no sync touches, is not found by id in the detached view")
		}
	}
	wg.Wait()
	if d.Generation() != gen {
		t.Fatalf("generation moved from %d to %d", gen, d.Generation())
	}
	if _, ok := d.User("u120"); ok {
		t.Fatal("u120 was deleted since: a detached view reads a user removed after it as absent")
	}
	n.Read(nil, func(v *View) {
		if v.Len() != 150 {
			t.Fatalf("after the deltas: %d profiles, want 150", v.Len())
		}
		if got := viewDump(v); got == before {
			t.Fatal("the changes are not visible")
		}
	})
}
