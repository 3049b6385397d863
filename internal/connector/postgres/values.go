package postgres

import (
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// plain converts pgx's decoded values into the connector's plain Go values:
// integers → int64, floats and numerics → float64, uuid → string, bytea →
// string, interval → time.Duration, arrays → []any; strings, bools, times and
// decoded json values pass through.
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
	case []any: // arrays and json arrays
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case driver.Valuer:
		// Other pgtype values (time of day, geometric types, ...) have a
		// database/sql form that is one of the plain types above.
		if dv, err := x.Value(); err == nil {
			return plain(dv)
		}
	case fmt.Stringer: // netip.Prefix (inet, cidr), net.HardwareAddr (macaddr)
		return x.String()
	}
	return v
}

// numeric is a float64 when one represents it; NaN, ±Infinity and numbers
// beyond float64's range keep PostgreSQL's text form.
func numeric(n pgtype.Numeric) any {
	if !n.Valid {
		return nil
	}
	if f, err := n.Float64Value(); err == nil && !math.IsInf(f.Float64, 0) && !math.IsNaN(f.Float64) {
		return f.Float64
	}
	b, err := n.MarshalJSON()
	if err != nil {
		return nil
	}
	return strings.Trim(string(b), `"`)
}

// interval counts a year as 365.25 days and a remaining month as 30 days, as
// PostgreSQL's own extract(epoch from interval) does.
func interval(iv pgtype.Interval) any {
	if !iv.Valid {
		return nil
	}
	const day = 24 * time.Hour
	years, months := time.Duration(iv.Months/12), time.Duration(iv.Months%12)
	return time.Duration(iv.Microseconds)*time.Microsecond + time.Duration(iv.Days)*day +
		years*(365*day+6*time.Hour) + months*30*day
}

func uuidString(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
