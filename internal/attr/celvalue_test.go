package attr

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

func TestToCELFromCELRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 5, time.UTC)
	values := []any{
		"s", int64(-3), uint64(7), 1.5, true, []byte("b"), at, 90 * time.Second,
		[]any{"a", int64(1), nil}, map[string]any{"k": []any{true}, "n": nil}, nil,
	}
	for _, v := range values {
		c := ToCEL(v)
		if v == nil {
			if c != nil {
				t.Errorf("ToCEL(nil) = %v", c)
			}
			continue
		}
		got, err := FromCEL(c.(ref.Val))
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("FromCEL(ToCEL(%#v)) = %#v, %v", v, got, err)
		}
	}
}

func TestJSON(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 5, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"string", types.String("s"), "s"},
		{"int", types.Int(3), int64(3)},
		{"uint", types.Uint(3), uint64(3)},
		{"double", types.Double(0.5), 0.5},
		{"bool", types.Bool(true), true},
		{"null", types.NullValue, nil},
		{"nil", nil, nil},
		{"timestamp, in UTC", types.Timestamp{Time: at}, "2026-05-01T11:00:00.000000005Z"},
		{"duration", types.Duration{Duration: 90 * time.Second}, "1m30s"},
		{"a list, deeply", ToCEL([]any{at, []any{time.Minute}}), []any{"2026-05-01T11:00:00.000000005Z", []any{"1m0s"}}},
		{"a map, deeply", ToCEL(map[string]any{"at": at, "n": int64(1)}), map[string]any{"at": "2026-05-01T11:00:00.000000005Z", "n": int64(1)}},
		{"a map with non-string keys", types.NewDynamicMap(types.DefaultTypeAdapter, map[int64]string{1: "x"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JSON(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("JSON = %#v, want %#v", got, tt.want)
			}
		})
	}
}
