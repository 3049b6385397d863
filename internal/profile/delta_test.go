package profile

import (
	"fmt"
	"math/rand"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/quick"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// op is one row change of a test delta: an upsert of the record, or a delete.
type op struct {
	del bool
	rec map[string]any
}

// delta maps ops through a real Mapper into a Delta, as an incremental sync does.
func delta(t testing.TB, name string, spec v1alpha1.DataSourceSpec, ops ...op) *Delta {
	t.Helper()
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	db := NewDeltaBuilder(name, m)
	for i, o := range ops {
		mapped, err := m.Map(record(int64(i+1), o.rec))
		if err != nil {
			t.Fatalf("op %d: %v", i+1, err)
		}
		if o.del {
			db.Delete(mapped)
		} else {
			db.Upsert(mapped)
		}
	}
	return db.Finish()
}

func record(num int64, r map[string]any) connector.Record {
	rec := connector.Record{Num: num}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rec.Fields = append(rec.Fields, k)
		rec.Values = append(rec.Values, r[k])
	}
	return rec
}

// dump renders every profile the view shows, with every attribute of the
// schema and its account's, sorted: two stores with equal dumps give every
// rule the same answers.
func dump(n *Namespace, sources []string) string {
	var lines []string
	n.Read(sources, func(v *View) {
		s := v.Schema()
		names := func(m map[string]attr.Type) []string {
			var out []string
			for k := range m {
				out = append(out, k)
			}
			sort.Strings(out)
			return out
		}
		for u := range v.Users() {
			var b strings.Builder
			fmt.Fprintf(&b, "%s@%s", u.ID(), u.AccountID())
			for _, k := range names(s.User) {
				if val, ok := u.Get(k); ok {
					fmt.Fprintf(&b, " %s=%v", k, val)
				}
			}
			if a, ok := u.Account(); ok {
				for _, k := range names(s.Account) {
					if val, ok := a.Get(k); ok {
						fmt.Fprintf(&b, " account.%s=%v", k, val)
					}
				}
			}
			lines = append(lines, b.String())
		}
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestApplyDelta(t *testing.T) {
	u := func(id string, nps int, acct string) map[string]any {
		return map[string]any{"id": id, "nps": nps, "role": "admin", "account": acct}
	}
	tests := []struct {
		name         string
		full         []map[string]any
		ops          []op
		want         []map[string]any // the full sync the result must equal
		wantUpserted int64
		wantDeleted  int64
	}{
		{"insert", []map[string]any{u("a", 1, "x")}, []op{{rec: u("b", 2, "x")}},
			[]map[string]any{u("a", 1, "x"), u("b", 2, "x")}, 1, 0},
		{"update", []map[string]any{u("a", 1, "x"), u("b", 2, "x")}, []op{{rec: u("a", 9, "y")}},
			[]map[string]any{u("a", 9, "y"), u("b", 2, "x")}, 1, 0},
		{"delete", []map[string]any{u("a", 1, "x"), u("b", 2, "x")}, []op{{del: true, rec: u("a", 1, "x")}},
			[]map[string]any{u("b", 2, "x")}, 0, 1},
		{"delete of an unknown key changes nothing", []map[string]any{u("a", 1, "x")}, []op{{del: true, rec: u("zz", 1, "x")}},
			[]map[string]any{u("a", 1, "x")}, 0, 0},
		{"unchanged row read again through the overlap", []map[string]any{u("a", 1, "x")}, []op{{rec: u("a", 1, "x")}},
			[]map[string]any{u("a", 1, "x")}, 0, 0},
		{"last operation on a key wins", []map[string]any{u("a", 1, "x")},
			[]op{{rec: u("a", 5, "x")}, {del: true, rec: u("a", 5, "x")}, {rec: u("a", 7, "x")}},
			[]map[string]any{u("a", 7, "x")}, 1, 0},
		{"delete every row", []map[string]any{u("a", 1, "x")}, []op{{del: true, rec: u("a", 1, "x")}},
			nil, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := newNamespace()
			got.Apply(source(t, "users", 0, usersSpec, tc.full...))
			got.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "x", "tier": "gold"}))
			gen := got.Generation()
			res := got.ApplyDelta(delta(t, "users", usersSpec, tc.ops...))
			if !res.Applied || res.Upserted != tc.wantUpserted || res.Deleted != tc.wantDeleted {
				t.Fatalf("result %+v, want upserted %d deleted %d", res, tc.wantUpserted, tc.wantDeleted)
			}
			if changed := res.Upserted+res.Deleted > 0; changed != (res.Generation > gen) {
				t.Errorf("generation %d -> %d with %d changes", gen, res.Generation, res.Upserted+res.Deleted)
			}

			want := newNamespace()
			want.Apply(source(t, "users", 0, usersSpec, tc.want...))
			want.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "x", "tier": "gold"}))
			if g, w := dump(got, nil), dump(want, nil); g != w {
				t.Errorf("profiles after the delta:\n%s\nafter a full sync:\n%s", g, w)
			}
			gd, gr, _ := got.Loaded("users")
			wd, wr, _ := want.Loaded("users")
			if gd != wd || gr != wr || res.Digest != wd || res.Records != wr {
				t.Errorf("digest/records %s/%d (result %s/%d), want %s/%d", gd, gr, res.Digest, res.Records, wd, wr)
			}
		})
	}
}

func TestApplyDeltaAccounts(t *testing.T) {
	n := newNamespace()
	n.Apply(source(t, "users", 0, usersSpec, map[string]any{"id": "a", "nps": 1, "role": "r", "account": "x"}))
	n.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "x", "tier": "gold"},
		map[string]any{"account": "y", "tier": "free"}))
	res := n.ApplyDelta(delta(t, "accounts", accountsSpec,
		op{rec: map[string]any{"account": "x", "tier": "platinum"}}, op{del: true, rec: map[string]any{"account": "y", "tier": "free"}}))
	if res.Upserted != 1 || res.Deleted != 1 || res.Records != 1 {
		t.Fatalf("result %+v", res)
	}
	if got := dump(n, nil); !strings.Contains(got, "account.tier=platinum") {
		t.Errorf("profiles: %s", got)
	}
}

func TestApplyDeltaNeedsFullLoad(t *testing.T) {
	n := newNamespace()
	if res := n.ApplyDelta(delta(t, "users", usersSpec, op{rec: map[string]any{"id": "a", "nps": 1, "role": "r", "account": "x"}})); res.Applied {
		t.Fatal("a delta applied to a source that was never loaded")
	}
	n.Apply(source(t, "tickets", 0, ticketsSpec, map[string]any{"user": "a", "feature": "f"}))
	if res := n.ApplyDelta(&Delta{Name: "tickets"}); res.Applied {
		t.Fatal("a delta applied to a Signal source")
	}
}

// TestDeltaEqualsFullSync: whatever sequence of incremental syncs is applied,
// the store shows what one full sync of the final rows shows, with the same
// digest and record count.
func TestDeltaEqualsFullSync(t *testing.T) {
	prop := func(seed int64) bool {
		rng := rand.New(rand.NewSource(seed))
		keys := 1 + rng.Intn(40)
		row := func() map[string]any {
			id := fmt.Sprintf("u%d", rng.Intn(keys))
			return map[string]any{"id": id, "nps": rng.Intn(3), "role": []string{"a", "b"}[rng.Intn(2)],
				"account": fmt.Sprintf("acct%d", rng.Intn(3))}
		}
		model := map[string]map[string]any{}
		var initial []map[string]any
		for i := rng.Intn(keys); i > 0; i-- {
			r := row()
			initial = append(initial, r)
			model[r["id"].(string)] = r
		}
		got := newNamespace()
		got.Apply(source(t, "survey", 1, surveySpec, map[string]any{"id": "u1", "nps": 10, "role": 3}))
		got.Apply(source(t, "users", 0, usersSpec, initial...))
		for syncs := rng.Intn(6); syncs >= 0; syncs-- {
			var ops []op
			for i := rng.Intn(10); i > 0; i-- {
				r := row()
				o := op{del: rng.Intn(3) == 0, rec: r}
				ops = append(ops, o)
				if o.del {
					delete(model, r["id"].(string))
				} else {
					model[r["id"].(string)] = r
				}
			}
			got.ApplyDelta(delta(t, "users", usersSpec, ops...))
		}
		var final []map[string]any
		for _, r := range model {
			final = append(final, r)
		}
		want := newNamespace()
		want.Apply(source(t, "survey", 1, surveySpec, map[string]any{"id": "u1", "nps": 10, "role": 3}))
		want.Apply(source(t, "users", 0, usersSpec, final...))
		gd, gr, _ := got.Loaded("users")
		wd, wr, _ := want.Loaded("users")
		for _, sel := range [][]string{nil, {"users"}} {
			if g, w := dump(got, sel), dump(want, sel); g != w {
				t.Logf("seed %d: profiles after deltas:\n%s\nafter a full sync:\n%s", seed, g, w)
				return false
			}
		}
		if gd != wd || gr != wr {
			t.Logf("seed %d: digest/records %s/%d, want %s/%d", seed, gd, gr, wd, wr)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

// TestBuilderReuse: a full sync that reuses the stored rows gives the same
// data and digest as one that does not, sharing every unchanged row.
func TestBuilderReuse(t *testing.T) {
	u := func(id string, nps int) map[string]any {
		return map[string]any{"id": id, "nps": nps, "role": "r", "account": "x"}
	}
	prev := source(t, "users", 0, usersSpec, u("a", 1), u("b", 2), u("c", 3))
	m, err := attr.NewMapper(&usersSpec)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("users", 0, m, 3)
	b.Reuse(prev)
	for i, r := range []map[string]any{u("a", 1), u("b", 9), u("d", 4)} {
		mapped, err := m.Map(record(int64(i+1), r))
		if err != nil {
			t.Fatal(err)
		}
		b.Add(mapped)
	}
	got := b.Finish()
	want := source(t, "users", 0, usersSpec, u("a", 1), u("b", 9), u("d", 4))
	if got.Digest != want.Digest || got.Records != want.Records {
		t.Errorf("digest/records %s/%d, want %s/%d", got.Digest, got.Records, want.Digest, want.Records)
	}
	if got.Users["a"] != prev.Users["a"] {
		t.Error("the unchanged row was not reused")
	}
	if got.Users["b"] == prev.Users["b"] {
		t.Error("the changed row was reused")
	}
	gotNS, wantNS := newNamespace(), newNamespace()
	gotNS.Apply(prev)
	gotNS.Apply(got)
	wantNS.Apply(want)
	if g, w := dump(gotNS, nil), dump(wantNS, nil); g != w {
		t.Errorf("profiles:\n%s\nwant:\n%s", g, w)
	}
}

// TestDiffEqualsApply: a sequence of full syncs applied as diffs against the
// stored data leaves the store as applying the last one whole does.
func TestDiffEqualsApply(t *testing.T) {
	prop := func(seed int64) bool {
		rng := rand.New(rand.NewSource(seed))
		keys := 1 + rng.Intn(30)
		sync := func() []map[string]any {
			var rows []map[string]any
			for i := rng.Intn(keys + 1); i > 0; i-- {
				rows = append(rows, map[string]any{"id": fmt.Sprintf("u%d", rng.Intn(keys)), "nps": rng.Intn(3),
					"role": "r", "account": fmt.Sprintf("a%d", rng.Intn(2))})
			}
			return rows
		}
		got := newNamespace()
		got.Apply(source(t, "users", 0, usersSpec, sync()...))
		var last *SourceData
		for i := 1 + rng.Intn(5); i > 0; i-- {
			last = source(t, "users", 0, usersSpec, sync()...)
			d := Diff(got.Source("users"), last)
			if d == nil {
				t.Logf("seed %d: no diff between two syncs of one spec", seed)
				return false
			}
			got.ApplyDelta(d)
		}
		want := newNamespace()
		want.Apply(last)
		gd, _, _ := got.Loaded("users")
		if g, w := dump(got, nil), dump(want, nil); g != w || gd != last.Digest {
			t.Logf("seed %d: diffs:\n%s\n(%s)\nwhole:\n%s\n(%s)", seed, g, gd, w, last.Digest)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
	// Another priority or declarations: applied whole.
	a := source(t, "users", 0, usersSpec)
	if Diff(a, source(t, "users", 1, usersSpec)) != nil || Diff(a, source(t, "users", 0, surveySpec)) != nil || Diff(nil, a) != nil {
		t.Error("diffed data whose merge plan differs")
	}
}

// TestSignalDeltaEqualsFullSync: an incremental sync of a Signal source reads
// every current row of each user with a changed row (soft-deleted rows
// included, as deletes); applied as a delta, it leaves the store as a full
// sync of the current rows does, digest and record count included.
func TestSignalDeltaEqualsFullSync(t *testing.T) {
	type sigRow struct {
		user, feature string
		deleted       bool
	}
	prop := func(seed int64) bool {
		rng := rand.New(rand.NewSource(seed))
		users := 1 + rng.Intn(12)
		var rows []sigRow
		current := func() []map[string]any {
			var out []map[string]any
			for _, r := range rows {
				if !r.deleted {
					out = append(out, map[string]any{"user": r.user, "feature": r.feature})
				}
			}
			return out
		}
		for i := rng.Intn(20); i > 0; i-- {
			rows = append(rows, sigRow{user: fmt.Sprintf("u%d", rng.Intn(users)), feature: fmt.Sprintf("f%d", rng.Intn(4))})
		}
		got := newNamespace()
		got.Apply(source(t, "users", 0, usersSpec, map[string]any{"id": "u1", "nps": 1, "role": "r", "account": "a"}))
		got.Apply(source(t, "requests", 0, ticketsSpec, current()...))
		for syncs := 1 + rng.Intn(5); syncs > 0; syncs-- {
			touched := map[string]bool{}
			for i := rng.Intn(6); i > 0; i-- {
				switch k := rng.Intn(3); {
				case k == 0 || len(rows) == 0: // a new row
					rows = append(rows, sigRow{user: fmt.Sprintf("u%d", rng.Intn(users)), feature: fmt.Sprintf("f%d", rng.Intn(4))})
					touched[rows[len(rows)-1].user] = true
				case k == 1: // a row's value changes
					r := &rows[rng.Intn(len(rows))]
					r.feature, touched[r.user] = fmt.Sprintf("f%d", rng.Intn(4)), true
				default: // a soft delete
					r := &rows[rng.Intn(len(rows))]
					r.deleted, touched[r.user] = true, true
				}
			}
			var ops []op
			for _, r := range rows {
				if touched[r.user] {
					ops = append(ops, op{del: r.deleted, rec: map[string]any{"user": r.user, "feature": r.feature}})
				}
			}
			if res := got.ApplyDelta(delta(t, "requests", ticketsSpec, ops...)); !res.Applied {
				t.Logf("seed %d: the signal delta was not applied", seed)
				return false
			}
		}
		want := newNamespace()
		want.Apply(source(t, "users", 0, usersSpec, map[string]any{"id": "u1", "nps": 1, "role": "r", "account": "a"}))
		want.Apply(source(t, "requests", 0, ticketsSpec, current()...))
		// A list's order is not kept: a list whose elements are the same
		// (its hash, a sum over elements) is not rewritten, as a full sync
		// reusing the stored rows does not rewrite it either.
		if g, w := sortedLists(dump(got, nil)), sortedLists(dump(want, nil)); g != w {
			t.Logf("seed %d: profiles after deltas:\n%s\nafter a full sync:\n%s", seed, g, w)
			return false
		}
		gd, gr, _ := got.Loaded("requests")
		wd, wr, _ := want.Loaded("requests")
		if gd != wd || gr != wr {
			t.Logf("seed %d: digest/records %s/%d, want %s/%d", seed, gd, gr, wd, wr)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

// sortedLists sorts the elements of every list a dump shows ([a, b]).
func sortedLists(dump string) string {
	return listPattern.ReplaceAllStringFunc(dump, func(l string) string {
		elems := strings.Split(strings.Trim(l, "[]"), ", ")
		sort.Strings(elems)
		return "[" + strings.Join(elems, ", ") + "]"
	})
}

var listPattern = regexp.MustCompile(`\[[^\]]*\]`)
