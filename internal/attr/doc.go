// Package attr converts raw record values into typed attribute values and maps
// records to user, account and signal rows according to a DataSource's declared
// attributes.
//
// Typed values are plain Go values that CEL adapts natively:
//
//	String → string, Int → int64, Double → float64, Bool → bool,
//	Timestamp → time.Time (UTC), Duration → time.Duration,
//	List → []any, Map → map[string]any (elements normalised the same way: JSON
//	numbers become int64 when integral, float64 otherwise).
//
// Conversion errors name the type, never the value: values may be personal.
package attr
