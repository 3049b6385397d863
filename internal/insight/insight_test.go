package insight

import (
	"reflect"
	"strings"
	"testing"
	"time"

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
	a.AddError()
	r := a.Result()
	want := []v1alpha1.InsightValue{{Value: "audit_log", Count: 2}, {Value: "sso", Count: 2}}
	if !reflect.DeepEqual(r.Values, want) || r.Members != 4 || a.Errors() != 1 {
		t.Fatalf("result = %+v errors=%d", r, a.Errors())
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
