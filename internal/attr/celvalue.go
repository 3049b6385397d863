package attr

import (
	"fmt"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// This file is the one converter between attribute values and CEL values:
// ToCEL when data is applied to the profile store, FromCEL (and JSON on top of
// it) when a stored value leaves it (tests, a Job's PERSONA_PROFILE).

// ToCEL converts a typed attribute value to its CEL value once, when data is
// applied, so that evaluating a rule over a million profiles reads values
// without converting (and allocating) each time. Lists and maps are converted
// deeply; a nil element becomes CEL null.
func ToCEL(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case ref.Val:
		return x
	case string:
		return types.String(x)
	case int64:
		return types.Int(x)
	case uint64:
		return types.Uint(x)
	case float64:
		return types.Double(x)
	case bool:
		return types.Bool(x)
	case []byte:
		return types.Bytes(x)
	case time.Time:
		return types.Timestamp{Time: x}
	case time.Duration:
		return types.Duration{Duration: x}
	case []any:
		elems := make([]ref.Val, len(x))
		for i, e := range x {
			elems[i] = celOrNull(e)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems)
	case map[string]any:
		m := make(map[ref.Val]ref.Val, len(x))
		for k, e := range x {
			m[types.String(k)] = celOrNull(e)
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, m)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

func celOrNull(v any) ref.Val {
	if c := ToCEL(v); c != nil {
		return c.(ref.Val)
	}
	return types.NullValue
}

// JSON converts a stored attribute value (a CEL value) to a JSON-friendly Go
// value: FromCEL, with timestamps as RFC 3339 strings and durations as Go
// duration strings, in lists and maps too. A value FromCEL cannot convert (a
// map with non-string keys) is nil.
func JSON(v any) any {
	rv, ok := v.(ref.Val)
	if !ok {
		return jsonFriendly(v)
	}
	native, err := FromCEL(rv)
	if err != nil {
		return nil
	}
	return jsonFriendly(native)
}

func jsonFriendly(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	case []any:
		for i, e := range x {
			x[i] = jsonFriendly(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = jsonFriendly(e)
		}
		return x
	}
	return v
}

// FromCEL converts a CEL value to the plain Go values this package uses:
// string, int64, uint64, float64, bool, []byte, time.Time, time.Duration, []any,
// map[string]any and nil.
func FromCEL(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Timestamp:
		return x.Time.UTC(), nil
	case types.Duration:
		return x.Duration, nil
	case types.Null:
		return nil, nil
	case *types.Err:
		return nil, x
	}
	if l, ok := v.(traits.Lister); ok {
		return listFromCEL(l)
	}
	if m, ok := v.(traits.Mapper); ok {
		return mapFromCEL(m)
	}
	return nil, fmt.Errorf("unsupported CEL value of type %s", v.Type().TypeName())
}

func listFromCEL(l traits.Lister) (any, error) {
	n, ok := l.Size().(types.Int)
	if !ok {
		return nil, fmt.Errorf("list without a size")
	}
	out := make([]any, 0, int(n))
	for it := l.Iterator(); it.HasNext() == types.True; {
		e, err := FromCEL(it.Next())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func mapFromCEL(m traits.Mapper) (any, error) {
	out := map[string]any{}
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("map key of type %s: only string keys are supported", k.Type().TypeName())
		}
		e, err := FromCEL(m.Get(k))
		if err != nil {
			return nil, err
		}
		out[string(ks)] = e
	}
	return out, nil
}
