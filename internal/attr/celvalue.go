package attr

import (
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

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
