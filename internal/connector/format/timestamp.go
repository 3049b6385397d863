package format

import (
	"encoding/json"
	"math"
	"time"
)

// Timestamp reads a watermark value: a timestamp (PostgreSQL), an RFC 3339
// string, or a number of Unix seconds, or milliseconds above 10^11 (JSON
// APIs). A null is the zero time, which never moves the watermark.
func Timestamp(v any) (time.Time, bool) {
	var secs float64
	switch t := v.(type) {
	case nil:
		return time.Time{}, true
	case time.Time:
		return t, true
	case string:
		for _, layout := range timestampLayouts {
			if ts, err := time.Parse(layout, t); err == nil {
				return ts, true
			}
		}
		return time.Time{}, false
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return time.Time{}, false
		}
		secs = f
	case float64:
		secs = t
	case int64:
		secs = float64(t)
	default:
		return time.Time{}, false
	}
	if secs > 1e11 {
		secs /= 1000
	}
	if secs < 0 || secs > 1e11 {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC(), true
}

// timestampLayouts are RFC 3339 and the ISO 8601 form without the offset's
// colon that Salesforce writes (2026-05-01T12:00:00.000+0000).
var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"}
