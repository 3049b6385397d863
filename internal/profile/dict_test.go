package profile

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// boxed is where an interface value's data lives: equal for values shared.
func boxed(v any) unsafe.Pointer { return (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1] }

// pack1 packs one value of column 0 with the given dictionaries.
func pack1(d *dictCols, v any) ref.Val {
	var p packer
	return p.pack("", []any{v}, d, 1).val(0)
}

func TestDictSharesEqualValues(t *testing.T) {
	d := newDictCols(4)
	a, b := pack1(d, "admin"), pack1(d, string([]byte("admin")))
	if boxed(a) != boxed(b) {
		t.Error("two equal strings of a column are boxed twice")
	}
	if a.Equal(types.String("admin")) != types.True {
		t.Errorf("coded %v, want admin", a)
	}
	var p packer
	r := p.pack("", []any{"admin", "admin"}, d, 1)
	if boxed(r.val(1)) == boxed(a) {
		t.Error("columns share a dictionary")
	}
	l1 := p.pack("", []any{nil, nil, []any{"a", "b"}}, d, 1).val(2)
	l2 := p.pack("", []any{nil, nil, []any{"a", "b"}}, d, 1).val(2)
	if boxed(l1) != boxed(l2) {
		t.Error("two equal lists of strings are built twice")
	}
	for _, other := range [][]any{{"ab"}, {"a", "b", ""}, {"b", "a"}} {
		o := p.pack("", []any{nil, nil, other}, d, 1).val(2)
		if o.Equal(l1) == types.True || boxed(o) == boxed(l1) {
			t.Errorf("%q is coded as [a b]", other)
		}
	}
	mixed := p.pack("", []any{nil, nil, nil, []any{"a", int64(1), nil}}, d, 1).val(3)
	want := types.NewRefValList(types.DefaultTypeAdapter, []ref.Val{types.String("a"), types.Int(1), types.NullValue})
	if mixed.Equal(want) != types.True {
		t.Errorf("a mixed list reads %v", mixed)
	}
	if v := pack1(d, int64(7)); v != types.Int(7) {
		t.Errorf("an int is %v", v)
	}
}

// A column of many distinct values codes the first maxInterned and packs the
// rest inline; every value reads back.
func TestDictStopsOnHighCardinality(t *testing.T) {
	d := newDictCols(1)
	for i := range maxInterned + 10 {
		s := string(rune('a'+i%26)) + string(rune(i))
		if v := pack1(d, s); v.Equal(types.String(s)) != types.True {
			t.Fatalf("value %d is %v", i, v)
		}
	}
	if c := d.col(0); c.n != maxInterned || len(c.strs) != maxInterned {
		t.Fatalf("the column codes %d values (%d in its index), want %d", c.n, len(c.strs), maxInterned)
	}
}

// A signal source's data holds one list per user; applying the same data
// again changes nothing.
func TestSignalDataAppliedOnce(t *testing.T) {
	n := newNamespace()
	n.Apply(source(t, "users", 0, usersSpec, map[string]any{"id": "u1"}))
	d := source(t, "requests", 0, ticketsSpec, map[string]any{"user": "u1", "feature": "sso"}, map[string]any{"user": "u1", "feature": "api"})
	n.Apply(d)
	if d.SignalLen("u1") != 2 {
		t.Errorf("the data holds %d elements for u1, want 2", d.SignalLen("u1"))
	}
	before, gen := dump(n, nil), n.Generation()
	if n.Apply(d) != gen || dump(n, nil) != before {
		t.Fatalf("applying the same data again changed the store:\n%s\nwas\n%s", dump(n, nil), before)
	}
	if want := "u1@ id=u1 requests=[sso, api]"; before != want {
		t.Fatalf("profiles:\n%s\nwant\n%s", before, want)
	}
}

// A re-sync adds to the dictionaries the stored rows decode with
// (Builder.Reuse) while readers decode those rows: run with -race.
func TestResyncSharesDictionariesWithReaders(t *testing.T) {
	m, err := attr.NewMapper(&usersSpec)
	if err != nil {
		t.Fatal(err)
	}
	build := func(prev *SourceData, round int) *SourceData {
		b := NewBuilder("crm", 0, m, 300)
		b.Reuse(prev)
		for i := range 300 {
			mapped, err := m.Map(record(int64(i+1), map[string]any{
				"id": fmt.Sprintf("u%d", i), "nps": fmt.Sprint(i % 11), "role": fmt.Sprintf("role-%d", (i+round)%600)}))
			if err != nil {
				t.Fatal(err)
			}
			b.Add(mapped)
		}
		return b.Finish()
	}
	n := NewStore().Namespace("ns")
	prev := build(nil, 0)
	n.Apply(prev)
	var v *View
	n.Read(nil, func(rv *View) { v = rv.Detach() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := 1; round <= 20; round++ {
			next := build(prev, round)
			if next.userDict != prev.userDict {
				t.Error("a re-sync of the same shape codes with new dictionaries")
			}
			n.Apply(next)
			prev = next
		}
	}()
	for range 50 {
		for u := range v.Users() {
			if r, ok := u.Get("role"); !ok || !strings.HasPrefix(string(r.(types.String)), "role-") {
				t.Fatalf("%s: role %v", u.ID(), r)
			}
		}
	}
	<-done
	n.Read(nil, func(v *View) {
		u, _ := v.User("u7")
		if r, _ := u.Get("role"); r != types.String("role-27") {
			t.Errorf("after 20 re-syncs u7's role is %v, want role-27", r)
		}
	})
}
