package postgres

import (
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// plain converts pgx's decoded values into the connector's plain Go values:
// integers → int64, floats and numerics → float64, uuid → string, interval →
// time.Duration, arrays → []any; strings, bools, times, json values pass through.
func plain(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, time.Time, map[string]any:
		return v
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int8:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case [16]byte:
		return uuidString(x)
	case pgtype.Numeric:
		return numeric(x)
	case pgtype.Interval:
		return interval(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case fmt.Stringer:
		return x.String()
	}
	return v
}

func numeric(n pgtype.Numeric) any {
	if !n.Valid {
		return nil
	}
	f, err := n.Float64Value()
	if err != nil || !f.Valid || math.IsInf(f.Float64, 0) {
		if b, err := n.MarshalJSON(); err == nil {
			return string(b)
		}
		return nil
	}
	return f.Float64
}

// interval approximates months as 30 days, as PostgreSQL's own extract(epoch) does.
func interval(iv pgtype.Interval) any {
	if !iv.Valid {
		return nil
	}
	return time.Duration(iv.Microseconds)*time.Microsecond +
		time.Duration(iv.Days)*24*time.Hour + time.Duration(iv.Months)*30*24*time.Hour
}

func uuidString(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
