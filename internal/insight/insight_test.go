package insight

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func list(vals ...string) ref.Val {
	return types.DefaultTypeAdapter.NativeToValue(vals)
}

func TestTopValues(t *testing.T) {
	a := New("requests", v1alpha1.InsightTopValues, 2)
	a.Add(list("audit_log", "sso", "audit_log")) // duplicates count once per member
	a.Add(list("sso", "api"))
	a.Add(list("audit_log"))
	a.Add(list())
	a.AddError(errors.New("no such key: featureRequests"))
	r := a.Result()
	want := []v1alpha1.InsightValue{{Value: "audit_log", Count: 2}, {Value: "sso", Count: 2}}
	if !reflect.DeepEqual(r.Values, want) || r.Members != 4 || a.Errors() != 1 {
		t.Fatalf("result = %+v errors=%d", r, a.Errors())
	}
}

// Occurrences counts each element every time it occurs: requests, not
// requesters.
func TestTopValuesCountingOccurrences(t *testing.T) {
	for count, want := range map[v1alpha1.InsightCount][]v1alpha1.InsightValue{
		"":                               {{Value: "audit_log", Count: 2}, {Value: "sso", Count: 2}},
		v1alpha1.InsightCountMembers:     {{Value: "audit_log", Count: 2}, {Value: "sso", Count: 2}},
		v1alpha1.InsightCountOccurrences: {{Value: "audit_log", Count: 4}, {Value: "sso", Count: 2}},
	} {
		a := ForSpec(v1alpha1.InsightSpec{Name: "requests", Type: v1alpha1.InsightTopValues, Limit: 2, Count: count})
		a.Add(list("audit_log", "sso", "audit_log", "audit_log"))
		a.Add(list("sso", "api"))
		a.Add(list("audit_log"))
		if r := a.Result(); !reflect.DeepEqual(r.Values, want) || r.Members != 3 {
			t.Errorf("count %q: result = %+v, want %+v", count, r, want)
		}
	}
}

func TestTopValuesOfScalars(t *testing.T) {
	a := New("tiers", v1alpha1.InsightTopValues, 10)
	for _, v := range []ref.Val{types.String("smb"), types.String("enterprise"), types.String("smb"), types.Int(3), types.Bool(true),
		types.Timestamp{Time: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, types.String(strings.Repeat("é", 200))} {
		a.Add(v)
	}
	r := a.Result()
	if r.Values[0] != (v1alpha1.InsightValue{Value: "smb", Count: 2}) || len(r.Values) != 6 {
		t.Fatalf("values = %+v", r.Values)
	}
	for _, v := range r.Values {
		if len(v.Value) > MaxValueLength {
			t.Fatalf("value longer than %d bytes: %d", MaxValueLength, len(v.Value))
		}
	}
}

func TestNumbers(t *testing.T) {
	vals := []ref.Val{types.Int(250000), types.Double(48000.5), types.String("n/a"), types.Int(1000)}
	for typ, want := range map[v1alpha1.InsightType]string{
		v1alpha1.InsightSum: "299000.50", v1alpha1.InsightAverage: "99666.83", v1alpha1.InsightMin: "1000", v1alpha1.InsightMax: "250000",
	} {
		a := New("arr", typ, 10)
		for _, v := range vals {
			a.Add(v)
		}
		if r := a.Result(); r.Value != want || r.Members != 3 || a.Errors() != 1 {
			t.Errorf("%s = %+v (errors %d), want %s", typ, r, a.Errors(), want)
		}
	}
	if r := New("arr", v1alpha1.InsightSum, 10).Result(); r.Value != "" {
		t.Errorf("empty sum = %q, want no value", r.Value)
	}
}

func TestErrorWhenNoMemberHasAValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  v1alpha1.InsightType
		add  func(a *Accumulator)
		want string
	}{
		{"sum over strings", v1alpha1.InsightSum, func(a *Accumulator) { a.Add(types.String("enterprise")); a.Add(types.String("smb")) },
			"no member has a usable value: 2 failed (first: a value of type string is not a number)"},
		{"missing attribute", v1alpha1.InsightAverage, func(a *Accumulator) { a.AddError(errors.New("no such key: nps")) },
			"no member has a usable value: 1 failed (first: no such key)"},
		{"values are never quoted", v1alpha1.InsightTopValues,
			func(a *Accumulator) {
				a.AddError(errors.New(`invalid RFC 3339 timestamp "jane@example.com 123-45-6789"`))
			},
			"no member has a usable value: 1 failed (first: invalid RFC 3339 timestamp)"},
		{"no members, no error", v1alpha1.InsightSum, func(*Accumulator) {}, ""},
		{"some values: no error", v1alpha1.InsightMax, func(a *Accumulator) { a.Add(types.String("x")); a.Add(types.Int(3)) }, ""},
	} {
		a := New("i", tc.typ, 10)
		tc.add(a)
		if got := a.Result().Error; got != tc.want {
			t.Errorf("%s: error = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestReasonIsBounded(t *testing.T) {
	long := strings.Repeat("é", 1000)
	if r := Reason(errors.New(long)); len(r) > maxReason || !utf8.ValidString(r) {
		t.Fatalf("reason of %d bytes (valid UTF-8: %v)", len(r), utf8.ValidString(r))
	}
}

// Aggregates computed elsewhere give the result of adding the members one
// by one.
func TestAggregatesEqualMembers(t *testing.T) {
	one := ForSpec(v1alpha1.InsightSpec{Name: "arr", Type: v1alpha1.InsightAverage})
	for _, v := range []float64{3, 9.5, -2} {
		one.Add(types.Double(v))
	}
	one.AddError(errors.New("no such key: arr"))
	agg := ForSpec(v1alpha1.InsightSpec{Name: "arr", Type: v1alpha1.InsightAverage})
	agg.AddNumbers(2, 12.5, 3, 9.5)
	agg.AddNumbers(1, -2, -2, -2)
	agg.AddNumbers(0, 0, 0, 0)
	agg.AddMissing(1, "no such key: arr")
	if a, b := one.Result(), agg.Result(); !reflect.DeepEqual(a, b) || a.Value != "3.50" {
		t.Fatalf("one by one %+v, aggregated %+v", a, b)
	}
	top := ForSpec(v1alpha1.InsightSpec{Name: "tier", Type: v1alpha1.InsightTopValues})
	top.AddCount("smb", 2)
	top.AddCount(strings.Repeat("é", 200), 1)
	top.AddCount(strings.Repeat("é", 201), 1) // the same rendered value
	if r := top.Result(); len(r.Values) != 2 || r.Values[0].Count != 2 || r.Values[1].Count != 2 || r.Members != 4 {
		t.Fatalf("TopValues from counts: %+v", r)
	}
	none := ForSpec(v1alpha1.InsightSpec{Name: "n", Type: v1alpha1.InsightSum})
	none.AddMissing(3, "no value")
	if r := none.Result(); !strings.Contains(r.Error, "3 failed (first: no value)") {
		t.Fatalf("no value: %+v", r)
	}
}
