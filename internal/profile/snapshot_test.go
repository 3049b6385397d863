package profile

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// mergedNamespace is TestMergePrecedence's store: two User sources with a
// conflict, an Account source, a Signal source.
func mergedNamespace(t *testing.T) *Namespace {
	n := NewStore().Namespace("team-a")
	n.Apply(source(t, "crm", 0, usersSpec,
		map[string]any{"id": "u1", "account": "acme", "nps": "9", "role": "champion"},
		map[string]any{"id": "u2", "account": "acme", "nps": "3"},
		map[string]any{"id": "u4", "account": "globex", "role": "end_user"}))
	n.Apply(source(t, "survey", 10, surveySpec,
		map[string]any{"id": "u1", "nps": "4", "role": "7"},
		map[string]any{"id": "u3", "nps": "10"}))
	n.Apply(source(t, "accounts", 0, accountsSpec, map[string]any{"account": "acme", "tier": "enterprise"}))
	n.Apply(source(t, "requests", 0, ticketsSpec,
		map[string]any{"user": "u1", "feature": "sso"}, map[string]any{"user": "ghost", "feature": "sso"}))
	return n
}

// Every way of reading a profile gives the same values: the snapshot's columns
// (indexed users), the snapshot's rows (Get by name on an indexed user), and
// the map entry (a user looked up by id).
func TestSnapshotReadsLikeTheMap(t *testing.T) {
	n := mergedNamespace(t)
	for _, sources := range [][]string{nil, {"crm", "accounts"}, {"survey"}, {"crm", "requests"}} {
		t.Run(fmt.Sprint(sources), func(t *testing.T) {
			n.Read(sources, func(v *View) {
				s := v.Schema()
				var userNames, accountNames []string
				for k := range s.User {
					userNames = append(userNames, k)
				}
				for k := range s.Account {
					accountNames = append(accountNames, k)
				}
				slices.Sort(userNames)
				slices.Sort(accountNames)
				uf, af := v.UserFields(userNames), v.AccountFields(accountNames)
				lazy := v.UserFieldsDense(userNames, make([]bool, len(userNames)))
				if v.Len() != len(v.UserIDs()) {
					t.Fatalf("Len %d, UserIDs %v", v.Len(), v.UserIDs())
				}
				seen := 0
				for u := range v.Users() {
					seen++
					byID, ok := v.User(u.ID())
					if !ok {
						t.Fatalf("%s: indexed but not found by id", u.ID())
					}
					if u.AccountID() != byID.AccountID() {
						t.Errorf("%s: account id %q vs %q", u.ID(), u.AccountID(), byID.AccountID())
					}
					for j, name := range userNames {
						want := get1(byID.Get(name))
						for how, got := range map[string]ref.Val{"column": u.Val(&uf, j), "by id": byID.Val(&uf, j), "rows": u.Val(&lazy, j), "get": get1(u.Get(name))} {
							if !same(got, want) {
								t.Errorf("%s.%s via %s = %v, want %v", u.ID(), name, how, got, want)
							}
						}
					}
					a, hasA := u.Account()
					b, hasB := byID.Account()
					if hasA != hasB {
						t.Fatalf("%s: account %v vs %v", u.ID(), hasA, hasB)
					}
					for j, name := range accountNames {
						var want ref.Val
						if hasB {
							want = get1(b.Get(name))
						}
						got := u.AccountVal(&af, j)
						if !same(got, want) || !same(byID.AccountVal(&af, j), want) {
							t.Errorf("%s account.%s = %v, want %v", u.ID(), name, got, want)
						}
						if hasA {
							if g := get1(a.Get(name)); !same(g, want) {
								t.Errorf("%s account.%s via Get = %v, want %v", u.ID(), name, g, want)
							}
						}
					}
				}
				if seen != v.Len() {
					t.Fatalf("Users yielded %d profiles, Len %d", seen, v.Len())
				}
			})
		})
	}
}

// get1 is Get's value, nil when absent.
func get1(v any, ok bool) ref.Val {
	r, _ := v.(ref.Val)
	if !ok {
		return nil
	}
	return r
}

func same(got, want ref.Val) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	return got.Equal(want) == types.True && got.Type() == want.Type()
}

// Apply and Remove drop the snapshot: the next read sees the new data.
func TestSnapshotFollowsChanges(t *testing.T) {
	n := NewStore().Namespace("ns")
	n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u1", "nps": "1"}, map[string]any{"id": "u2", "nps": "2"}))
	nps := func() map[string]any {
		out := map[string]any{}
		n.Read(nil, func(v *View) {
			f := v.UserFields([]string{"nps"})
			for u := range v.Users() {
				out[u.ID()], _ = attr.FromCEL(u.Val(&f, 0))
			}
		})
		return out
	}
	if got := fmt.Sprint(nps()); got != "map[u1:1 u2:2]" {
		t.Fatalf("first read: %s", got)
	}
	n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u2", "nps": "5"}, map[string]any{"id": "u3", "nps": "6"}))
	if got := fmt.Sprint(nps()); got != "map[u2:5 u3:6]" {
		t.Fatalf("after Apply: %s", got)
	}
	n.Remove("crm")
	if got := fmt.Sprint(nps()); got != "map[]" {
		t.Fatalf("after Remove: %s", got)
	}
}

func TestColumnCoding(t *testing.T) {
	many := func(n int, f func(i int) ref.Val) []ref.Val {
		out := make([]ref.Val, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name   string
		vals   []ref.Val
		coded  bool
		distin int // distinct values in the dictionary, "no value" included
	}{
		{"strings", []ref.Val{types.String("a"), nil, types.String("b"), types.String("a")}, true, 3},
		{"ints repeat", many(1000, func(i int) ref.Val { return types.Int(i % 11) }), true, 12},
		{"doubles keep -0 and 0 apart", []ref.Val{types.Double(0), types.Double(math.Copysign(0, -1)), types.Double(math.NaN()), types.Double(math.NaN())}, true, 4},
		{"timestamps by instant and zone", []ref.Val{types.Timestamp{Time: time.Unix(0, 0).UTC()}, types.Timestamp{Time: time.Unix(0, 0).In(time.FixedZone("x", 60))}}, true, 3},
		{"bools and durations", []ref.Val{types.True, types.False, types.Duration{Duration: time.Hour}, types.True}, true, 4},
		{"lists are not coded", []ref.Val{types.String("a"), types.NewStringList(types.DefaultTypeAdapter, []string{"x"})}, false, 0},
		{"bytes are not coded", []ref.Val{types.Bytes("x"), types.Bytes("x")}, false, 0},
		{"too many distinct values", many(maxDict+10, func(i int) ref.Val { return types.Int(i) }), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b columnBuilder
			b.init(len(tt.vals))
			for _, v := range tt.vals {
				b.add(v)
			}
			c := &column{}
			b.finish(c)
			if coded := c.vals == nil; coded != tt.coded {
				t.Fatalf("dictionary-coded = %v, want %v", coded, tt.coded)
			}
			if tt.coded && len(c.dict) != tt.distin {
				t.Errorf("dictionary has %d entries, want %d", len(c.dict), tt.distin)
			}
			for i, v := range tt.vals {
				if !tt.coded {
					break
				}
				// A derived snapshot patches codes through the index.
				if code, ok := c.index.find(v); !ok || code != c.codes[i] {
					t.Errorf("index.find(%v) = %d, %v; coded as %d", v, code, ok, c.codes[i])
				}
			}
			for i, want := range tt.vals {
				got := c.at(int32(i))
				if (got == nil) != (want == nil) || got != nil && !identical(got, want) {
					t.Fatalf("value %d = %v, want %v", i, got, want)
				}
			}
		})
	}
}

// identical is value identity: same type, same Go value (doubles by bits).
func identical(a, b ref.Val) bool {
	if x, ok := a.(types.Double); ok {
		y, ok := b.(types.Double)
		return ok && math.Float64bits(float64(x)) == math.Float64bits(float64(y))
	}
	if _, ok := a.(types.Bytes); ok {
		return a.Equal(b) == types.True
	}
	if _, ok := a.(types.Timestamp); ok {
		return a == b
	}
	return a.Type() == b.Type() && a.Equal(b) == types.True
}

// Concurrent readers of a new generation build one snapshot and see the same.
func TestConcurrentReads(t *testing.T) {
	n := mergedNamespace(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var sources []string
			if i%2 == 0 {
				sources = []string{"crm", "accounts"}
			}
			n.Read(sources, func(v *View) {
				f := v.UserFields([]string{"nps", "role", "id"})
				for u := range v.Users() {
					u.Val(&f, 0)
				}
			})
		}(i)
	}
	wg.Wait()
}
