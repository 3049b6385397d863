package playbook

import (
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Plain turns a stored attribute value (a CEL value) into a JSON-friendly Go
// value for a Job's PERSONA_PROFILE: timestamps as RFC 3339, durations as Go
// duration strings, lists and maps recursively.
func Plain(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case types.String:
		return string(x)
	case types.Int:
		return int64(x)
	case types.Uint:
		return uint64(x)
	case types.Double:
		return float64(x)
	case types.Bool:
		return bool(x)
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano)
	case types.Duration:
		return x.Duration.String()
	case types.Null:
		return nil
	case traits.Lister:
		n, _ := x.Size().(types.Int)
		out := make([]any, 0, int(n))
		for it := x.Iterator(); it.HasNext() == types.True; {
			out = append(out, Plain(x.Get(it.Next())))
		}
		return out
	case traits.Mapper:
		out := map[string]any{}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			if s, ok := k.(types.String); ok {
				out[string(s)] = Plain(x.Get(k))
			}
		}
		return out
	case ref.Val:
		return x.Value()
	}
	return v
}
