package profile

import (
	"testing"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// boxed is where an interface value's data lives: equal for values shared.
func boxed(v any) unsafe.Pointer { return (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1] }

func TestInternSharesEqualValues(t *testing.T) {
	var in interner
	a, b := in.value(0, "admin"), in.value(0, string([]byte("admin")))
	if boxed(a) != boxed(b) {
		t.Error("two equal strings of a column are boxed twice")
	}
	if a.(ref.Val).Equal(types.String("admin")) != types.True {
		t.Errorf("interned %v, want admin", a)
	}
	if c := in.value(1, "admin"); boxed(c) == boxed(a) {
		t.Error("columns share an interner")
	}
	l1, l2 := in.value(2, []any{"a", "b"}), in.value(2, []any{"a", "b"})
	if boxed(l1) != boxed(l2) {
		t.Error("two equal lists of strings are built twice")
	}
	for _, other := range [][]any{{"ab"}, {"a", "b", ""}, {"b", "a"}} {
		if o := in.value(2, other); o.(ref.Val).Equal(l1.(ref.Val)) == types.True || boxed(o) == boxed(l1) {
			t.Errorf("%q is interned as [a b]", other)
		}
	}
	if v := in.value(3, []any{"a", int64(1)}); v.(ref.Val).Equal(types.NewStringList(types.DefaultTypeAdapter, []string{"a"})) == types.True {
		t.Error("a mixed list is not converted")
	}
	if v := in.value(0, int64(7)); v != types.Int(7) {
		t.Errorf("an int is %v", v)
	}
}

// A column of many distinct values stops interning: its map is dropped and
// its values are still converted.
func TestInternStopsOnHighCardinality(t *testing.T) {
	var in interner
	for i := range maxInterned + 10 {
		s := string(rune('a'+i%26)) + string(rune(i))
		if v := in.value(0, s); v.(ref.Val).Equal(types.String(s)) != types.True {
			t.Fatalf("value %d is %v", i, v)
		}
	}
	if c := in.cols[0]; !c.off || c.strs != nil {
		t.Fatalf("column still interning: off %v, %d values", c.off, len(c.strs))
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
