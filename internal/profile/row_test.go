package profile

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// randValue is a value of one of the types attr maps to (or a CEL value, as
// the built-in source and events hold), extremes included.
func randValue(r *rand.Rand, depth int) any {
	strs := []string{"", "admin", "é", "日本語", "a\x00b", strings.Repeat("x", 300)}
	switch r.IntN(16) {
	case 0:
		return nil
	case 1, 2:
		return strs[r.IntN(len(strs))]
	case 3:
		return []int64{0, 1, -1, 255, 256, math.MaxInt64, math.MinInt64}[r.IntN(7)]
	case 4:
		return []uint64{0, 1, math.MaxUint64}[r.IntN(3)]
	case 5:
		return []float64{0, math.Copysign(0, -1), 1.5, math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}[r.IntN(7)]
	case 6:
		return r.IntN(2) == 0
	case 7:
		t := time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).UTC()
		if r.IntN(4) == 0 {
			t = t.In(time.FixedZone("X", 3600)) // not packed: kept as a CEL value
		}
		return t
	case 8:
		return time.Duration(r.Int64())
	case 9, 10:
		l := make([]any, r.IntN(4))
		for i := range l {
			l[i] = strs[r.IntN(3)]
		}
		return l
	case 11:
		if depth > 0 {
			return "leaf"
		}
		l := make([]any, r.IntN(4))
		for i := range l {
			l[i] = randValue(r, depth+1)
		}
		return l
	case 12:
		return map[string]any{"k": strs[r.IntN(len(strs))]}
	case 13:
		return types.String(strs[r.IntN(len(strs))])
	case 14:
		return []byte("bytes")
	default:
		return types.Int(r.Int64())
	}
}

// celIdentical reports CEL identity: same type, and equal (NaN and signed zeros by
// their bits).
func celIdentical(a, b ref.Val) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if x, ok := a.(types.Double); ok {
		y, ok := b.(types.Double)
		return ok && math.Float64bits(float64(x)) == math.Float64bits(float64(y))
	}
	if x, ok := a.(types.Timestamp); ok {
		y, ok := b.(types.Timestamp)
		return ok && x.Time.Equal(y.Time) && x.Location().String() == y.Location().String()
	}
	return a.Type() == b.Type() && a.Equal(b) == types.True
}

// Every value reads back from its packed row as attr.ToCEL converts it, with
// the account id, whatever the dictionary coded.
func TestPackedRowsReadBack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := newDictCols(6)
	var p packer
	for range 5000 {
		vals := make([]any, r.IntN(8))
		for i := range vals {
			vals[i] = randValue(r, 0)
		}
		acct := []string{"", "acct-1", "ü"}[r.IntN(3)]
		row := p.pack(acct, vals, d, 1)
		if row.account() != acct || row.len() != len(vals) {
			t.Fatalf("row of %q (%d values) reads account %q, %d values", acct, len(vals), row.account(), row.len())
		}
		for i, v := range vals {
			want, _ := attr.ToCEL(v).(ref.Val)
			if got := row.val(i); !celIdentical(got, want) {
				t.Fatalf("value %d %#v reads %#v, want %#v", i, v, got, want)
			}
		}
		if row.val(len(vals)) != nil || row.val(-1) != nil {
			t.Fatal("a value out of range is not absent")
		}
	}
}

// A row whose values take more than 64 KiB uses wide offsets; one with more
// values than a packed row holds keeps them as CEL values.
func TestLargeRows(t *testing.T) {
	var p packer
	big := strings.Repeat("y", 70_000)
	w := p.pack("a", []any{big, int64(7), "z"}, nil, 1)
	if w.mode != wide || w.val(0) != types.String(big) || w.val(1) != types.Int(7) || w.val(2) != types.String("z") {
		t.Fatalf("wide row: mode %d, reads %v %v", w.mode, w.val(1), w.val(2))
	}
	many := make([]any, math.MaxUint16+1)
	many[math.MaxUint16] = "last"
	pl := p.pack("a", many, nil, 1)
	if pl.mode != plain || pl.len() != len(many) || pl.val(math.MaxUint16) != types.String("last") || pl.val(0) != nil {
		t.Fatalf("plain row: mode %d, %d values", pl.mode, pl.len())
	}
}

// Rows compare by hash when both have one, by value otherwise.
func TestSameRow(t *testing.T) {
	var p packer
	a := p.pack("x", []any{"v", int64(1)}, newDictCols(2), 0)
	b := p.pack("x", []any{types.String("v"), types.Int(1)}, nil, 0)
	c := p.pack("y", []any{"v", int64(1)}, nil, 0)
	e := p.pack("x", []any{"v", int64(2)}, nil, 0)
	if !sameRow(a, b) || sameRow(a, c) || sameRow(a, e) || sameRow(a, nil) || !sameRow(nil, nil) {
		t.Error("value comparison of unhashed rows")
	}
	h1, h2 := p.pack("x", []any{"v"}, nil, 5), p.pack("x", []any{"w"}, nil, 5)
	if !sameRow(h1, h2) || sameRow(h1, p.pack("x", []any{"v"}, nil, 6)) {
		t.Error("hashed rows are not compared by hash")
	}
}

// FuzzPackedString: any string, in any column position, reads back.
func FuzzPackedString(f *testing.F) {
	f.Add("acct", "value", int64(3))
	f.Fuzz(func(t *testing.T, acct, s string, n int64) {
		var p packer
		row := p.pack(acct, []any{s, n, []any{s, s}, nil}, newDictCols(4), 1)
		if row.account() != acct || row.val(0) != types.String(s) || row.val(1) != types.Int(n) || row.val(3) != nil {
			t.Fatalf("%q %q %d reads %q %v %v", acct, s, n, row.account(), row.val(0), row.val(1))
		}
		want := types.NewStringList(types.DefaultTypeAdapter, []string{s, s})
		if row.val(2).Equal(want) != types.True {
			t.Fatalf("list reads %v", row.val(2))
		}
	})
}
