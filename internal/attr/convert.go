package attr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is an attribute type, as declared in a DataSource's spec.attributes.
type Type string

// Attribute types; the names match the API's AttributeType enum.
const (
	String    Type = "String"
	Int       Type = "Int"
	Double    Type = "Double"
	Bool      Type = "Bool"
	Timestamp Type = "Timestamp"
	Duration  Type = "Duration"
	List      Type = "List"
	Map       Type = "Map"
)

// errType is returned when a value does not convert; callers add the attribute.
var errType = errors.New("value does not convert")

// Convert converts a raw value (a CSV cell, a decoded JSON value, a SQL driver
// value or a CEL result) to t. A nil value stays nil: the attribute is absent.
func Convert(v any, t Type) (any, error) {
	if v == nil {
		return nil, nil
	}
	if already(v, t) {
		// Return the caller's interface value itself: re-boxing would allocate
		// once per value, which dominates a large sync.
		return v, nil
	}
	var out any
	var err error
	switch t {
	case String:
		out, err = toString(v)
	case Int:
		out, err = toInt(v)
	case Double:
		out, err = toDouble(v)
	case Bool:
		out, err = toBool(v)
	case Timestamp:
		out, err = toTimestamp(v)
	case Duration:
		out, err = toDuration(v)
	case List:
		out, err = toList(v)
	case Map:
		out, err = toMap(v)
	default:
		return nil, fmt.Errorf("unknown attribute type %q", t)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot convert %s to %s", describe(v), t)
	}
	return out, nil
}

// already reports whether v already has t's Go type.
func already(v any, t Type) bool {
	switch v.(type) {
	case string:
		return t == String
	case int64:
		return t == Int
	case float64:
		return t == Double
	case bool:
		return t == Bool
	case time.Duration:
		return t == Duration
	}
	return false
}

// describe names the kind of a raw value without revealing the value.
func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number, float64, float32, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	default:
		return fmt.Sprintf("a value of type %T", v)
	}
}

func toString(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case []byte:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	}
	if f, ok := number(v); ok {
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10), nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
	return nil, errType
}

func toInt(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, errType
		}
		return int64(x), nil
	case string:
		return parseInt(strings.TrimSpace(x))
	case json.Number:
		return parseInt(string(x))
	case float64:
		return floatToInt(x)
	case float32:
		return floatToInt(float64(x))
	}
	return nil, errType
}

// parseInt accepts integers, and integral decimals such as "12.0" or "1e3" that
// spreadsheets and JSON encoders produce.
func parseInt(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, errType
	}
	return floatToInt(f)
}

func floatToInt(f float64) (any, error) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 || math.IsNaN(f) {
		return nil, errType
	}
	return int64(f), nil
}

func toDouble(v any) (any, error) {
	switch x := v.(type) {
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return nil, errType
		}
		return f, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, errType
		}
		return f, nil
	}
	if f, ok := number(v); ok {
		return f, nil
	}
	return nil, errType
}

// number returns v as a float64 when it is a Go numeric type.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	}
	return 0, false
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "1", "yes", "y":
			return true, nil
		case "false", "f", "0", "no", "n":
			return false, nil
		}
		return nil, errType
	}
	if f, ok := number(v); ok && (f == 0 || f == 1) {
		return f == 1, nil
	}
	if n, ok := v.(json.Number); ok && (n == "0" || n == "1") {
		return n == "1", nil
	}
	return nil, errType
}

// timeLayouts are tried in order for string timestamps without a zone suffix
// being read as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

func toTimestamp(v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		s := strings.TrimSpace(x)
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return epoch(s)
	case json.Number:
		return epoch(string(x))
	}
	if f, ok := number(v); ok {
		return epochFloat(f)
	}
	return nil, errType
}

// epoch reads Unix seconds, as exported by many tools.
func epoch(s string) (any, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, errType
	}
	return epochFloat(f)
}

func epochFloat(f float64) (any, error) {
	// CEL timestamps span years 1 to 9999.
	if math.IsNaN(f) || f < -62135596800 || f > 253402300799 {
		return nil, errType
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func toDuration(v any) (any, error) {
	switch x := v.(type) {
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if d, err := time.ParseDuration(s); err == nil {
			return d, nil
		}
		return seconds(s)
	case json.Number:
		return seconds(string(x))
	}
	if f, ok := number(v); ok {
		return secondsFloat(f)
	}
	return nil, errType
}

// seconds reads a plain number as a count of seconds.
func seconds(s string) (any, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, errType
	}
	return secondsFloat(f)
}

func secondsFloat(f float64) (any, error) {
	if math.IsNaN(f) || math.Abs(f) > float64(math.MaxInt64)/1e9 {
		return nil, errType
	}
	return time.Duration(f * float64(time.Second)), nil
}

// toList accepts a decoded array, a JSON array string, or (for CSV cells) values
// separated by ";". An empty string is an empty list.
func toList(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		return Normalize(x).([]any), nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return []any{}, nil
		}
		if s[0] == '[' {
			var arr []any
			if err := decodeJSON(s, &arr); err != nil {
				return nil, errType
			}
			return Normalize(arr).([]any), nil
		}
		out := make([]any, 0, strings.Count(s, ";")+1)
		for p := range strings.SplitSeq(s, ";") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return nil, errType
}

func toMap(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		return Normalize(x), nil
	case string:
		var m map[string]any
		if err := decodeJSON(strings.TrimSpace(x), &m); err != nil || m == nil {
			return nil, errType
		}
		return Normalize(m), nil
	}
	return nil, errType
}

func decodeJSON(s string, out any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	return dec.Decode(out)
}

// Normalize converts decoded JSON inside lists and maps to CEL-friendly values:
// json.Number becomes int64 when integral, else float64; other numeric Go types
// become int64 or float64. It returns a new value when anything changed.
func Normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Normalize(e)
		}
		return out
	case int, int32, int16, int8, uint8, uint16, uint32:
		i, _ := toInt(x)
		return i
	case float32:
		return float64(x)
	case time.Time:
		return x.UTC()
	}
	return v
}
