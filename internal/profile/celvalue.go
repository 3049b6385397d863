package profile

import (
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// toCEL converts a typed attribute value to its CEL value once, when data is
// applied, so that evaluating a rule over a million profiles reads values without
// converting (and allocating) each time. Lists and maps are converted deeply.
func toCEL(v any) any {
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
	if c := toCEL(v); c != nil {
		return c.(ref.Val)
	}
	return types.NullValue
}
