package attr

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConvert(t *testing.T) {
	ts := time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		typ  Type
		want any
		err  bool
	}{
		{"nil stays absent", nil, Int, nil, false},
		{"string", "acme", String, "acme", false},
		{"json number to string", json.Number("42"), String, "42", false},
		{"integral float to string", 3.0, String, "3", false},
		{"float to string", 2.5, String, "2.5", false},
		{"bool to string", true, String, "true", false},
		{"time to string", ts, String, "2027-01-15T00:00:00Z", false},
		{"int from string", " 7 ", Int, int64(7), false},
		{"int from negative string", "-12", Int, int64(-12), false},
		{"int from integral decimal", "12.0", Int, int64(12), false},
		{"int from exponent", "1e3", Int, int64(1000), false},
		{"int from fraction", "1.5", Int, nil, true},
		{"int from words", "seven", Int, nil, true},
		{"int from json number", json.Number("9007199254740993"), Int, int64(9007199254740993), false},
		{"int from float64", float64(4), Int, int64(4), false},
		{"int from int32", int32(5), Int, int64(5), false},
		{"int from huge uint64", uint64(math.MaxUint64), Int, nil, true},
		{"int from NaN", math.NaN(), Int, nil, true},
		{"int from bool", true, Int, nil, true},
		{"double from string", "250000.50", Double, 250000.5, false},
		{"double from int", int64(3), Double, float64(3), false},
		{"double from json", json.Number("1.25"), Double, 1.25, false},
		{"double from junk", "1,5", Double, nil, true},
		{"bool from true", "TRUE", Bool, true, false},
		{"bool from yes", "yes", Bool, true, false},
		{"bool from 0", "0", Bool, false, false},
		{"bool from number 1", float64(1), Bool, true, false},
		{"bool from json 0", json.Number("0"), Bool, false, false},
		{"bool from maybe", "maybe", Bool, nil, true},
		{"bool from 2", int64(2), Bool, nil, true},
		{"timestamp RFC3339", "2027-01-15T00:00:00Z", Timestamp, ts, false},
		{"timestamp with offset", "2027-01-15T01:00:00+01:00", Timestamp, ts, false},
		{"timestamp date only", "2027-01-15", Timestamp, ts, false},
		{"timestamp with space", "2027-01-15 00:00:00", Timestamp, ts, false},
		{"timestamp epoch string", "1800000000", Timestamp, time.Unix(1800000000, 0).UTC(), false},
		{"timestamp epoch number", json.Number("1800000000"), Timestamp, time.Unix(1800000000, 0).UTC(), false},
		{"timestamp time", ts.In(time.FixedZone("x", 3600)), Timestamp, ts, false},
		{"timestamp junk", "next tuesday", Timestamp, nil, true},
		{"timestamp out of CEL range", float64(1e15), Timestamp, nil, true},
		{"duration go syntax", "1h30m", Duration, 90 * time.Minute, false},
		{"duration seconds", "90", Duration, 90 * time.Second, false},
		{"duration number", float64(1.5), Duration, 1500 * time.Millisecond, false},
		{"duration junk", "a while", Duration, nil, true},
		{"duration overflow", float64(1e300), Duration, nil, true},
		{"list from json array", []any{"a", json.Number("1"), json.Number("1.5")}, List, []any{"a", int64(1), 1.5}, false},
		{"list from JSON string", `["sso", "audit_log"]`, List, []any{"sso", "audit_log"}, false},
		{"list from semicolons", "sso; audit_log;;", List, []any{"sso", "audit_log"}, false},
		{"list from empty string", "", List, []any{}, false},
		{"list from bad JSON", "[1,", List, nil, true},
		{"list from number", int64(1), List, nil, true},
		{"map from object", map[string]any{"n": json.Number("2")}, Map, map[string]any{"n": int64(2)}, false},
		{"map from JSON string", `{"plan":"pro"}`, Map, map[string]any{"plan": "pro"}, false},
		{"map from array string", `[1]`, Map, nil, true},
		{"map from null JSON", `null`, Map, nil, true},
		{"unknown type", "x", Type("Float"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Convert(tt.in, tt.typ)
			if (err != nil) != tt.err {
				t.Fatalf("Convert(%#v, %s) error = %v, want error %v", tt.in, tt.typ, err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Convert(%#v, %s) = %#v, want %#v", tt.in, tt.typ, got, tt.want)
			}
		})
	}
}

// Conversion errors must not echo the value: it may be personal data.
func TestConvertErrorsDoNotLeakValues(t *testing.T) {
	secret := "jane.doe@example.com"
	for _, typ := range []Type{Int, Double, Bool, Timestamp, Duration, Map} {
		_, err := Convert(secret, typ)
		if err == nil {
			t.Fatalf("Convert to %s: want an error", typ)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "jane") {
			t.Fatalf("error leaks the value: %v", err)
		}
	}
}

func FuzzConvert(f *testing.F) {
	for _, s := range []string{"", "1", "-1.5", "true", "2027-01-15", "1h", "[1,2]", `{"a":1}`, "a;b", "1e400", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range []Type{String, Int, Double, Bool, Timestamp, Duration, List, Map} {
			got, err := Convert(s, typ)
			if err != nil {
				if strings.Contains(err.Error(), s) && len(s) > 3 && !strings.Contains("cannot convert a string to "+string(typ), s) {
					t.Fatalf("error for %s leaks the input: %v", typ, err)
				}
				continue
			}
			// A converted value converts again to the same value (idempotent).
			again, err := Convert(got, typ)
			if err != nil {
				t.Fatalf("Convert(Convert(%q, %s)) failed: %v", s, typ, err)
			}
			if typ != Double && !reflect.DeepEqual(again, got) {
				t.Fatalf("Convert not idempotent for %s: %#v then %#v", typ, got, again)
			}
		}
	})
}
