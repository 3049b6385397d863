// Package insight aggregates values over a persona's members: the most frequent
// values (of a value or of each element of a list), and sums, averages, minima
// and maxima of numbers. Results are bounded for status.
package insight

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// MaxValueLength bounds a rendered value in status.
const MaxValueLength = 256

// maxReason bounds the reason an insight's error quotes (the field holds 1024).
const maxReason = 512

// Accumulator aggregates one insight.
type Accumulator struct {
	name    string
	typ     v1alpha1.InsightType
	limit   int
	counts  map[string]int64
	sum     float64
	min     float64
	max     float64
	members int64
	errors  int64
	// occurrences: TopValues counts every element, not each member once.
	occurrences bool
	// firstErr says why the first member without a usable value had none,
	// without quoting any value (values may be personal data).
	firstErr string
}

// New starts an insight; limit bounds TopValues (1..10).
func New(name string, typ v1alpha1.InsightType, limit int) *Accumulator {
	if limit < 1 || limit > 10 {
		limit = 10
	}
	return &Accumulator{name: name, typ: typ, limit: limit, counts: map[string]int64{}, min: math.Inf(1), max: math.Inf(-1)}
}

// ForSpec starts an insight as its spec says.
func ForSpec(spec v1alpha1.InsightSpec) *Accumulator {
	a := New(spec.Name, spec.Type, int(spec.Limit))
	a.occurrences = spec.Count == v1alpha1.InsightCountOccurrences
	return a
}

// Add adds one member's value. Values of the wrong kind are counted as errors.
func (a *Accumulator) Add(v ref.Val) {
	if a.typ == v1alpha1.InsightTopValues {
		a.addTop(v)
		return
	}
	f, ok := number(v)
	if !ok {
		a.fail("a value of type " + v.Type().TypeName() + " is not a number")
		return
	}
	a.members++
	a.sum += f
	a.min = math.Min(a.min, f)
	a.max = math.Max(a.max, f)
}

// AddCount adds n members whose value renders as value (a TopValues group
// computed elsewhere, e.g. by the database).
func (a *Accumulator) AddCount(value string, n int64) {
	a.members += n
	a.counts[truncate(value, MaxValueLength)] += n
}

// AddNumbers adds n members' numbers by their sum, minimum and maximum
// (aggregated elsewhere, e.g. by the database).
func (a *Accumulator) AddNumbers(n int64, sum, lo, hi float64) {
	if n == 0 {
		return
	}
	a.members += n
	a.sum += sum
	a.min = math.Min(a.min, lo)
	a.max = math.Max(a.max, hi)
}

// AddMissing counts n members without a usable value, for a reason.
func (a *Accumulator) AddMissing(n int64, reason string) {
	if n <= 0 {
		return
	}
	if a.errors == 0 {
		a.firstErr = reason
	}
	a.errors += n
}

// AddError counts a member whose expression failed (e.g. a missing attribute).
func (a *Accumulator) AddError(err error) { a.fail(Reason(err)) }

func (a *Accumulator) fail(reason string) {
	if a.errors == 0 {
		a.firstErr = reason
	}
	a.errors++
}

// Reason is why a member's expression failed, as attr.SafeError says it
// (never quoting a value), bounded for status.
func Reason(err error) string { return truncate(attr.SafeError(err), maxReason) }

func (a *Accumulator) addTop(v ref.Val) {
	a.members++
	if l, ok := v.(traits.Lister); ok {
		// Each distinct element counts once per member, or every time it
		// occurs.
		seen := map[string]bool{}
		for it := l.Iterator(); it.HasNext() == types.True; {
			s := Render(it.Next())
			if a.occurrences || !seen[s] {
				seen[s] = true
				a.counts[s]++
			}
		}
		return
	}
	a.counts[Render(v)]++
}

// Result is the insight's status entry. When members failed and none gave a
// value, error says why the first failed.
func (a *Accumulator) Result() v1alpha1.InsightResult {
	r := v1alpha1.InsightResult{Name: a.name, Type: a.typ, Members: a.members}
	if a.members == 0 && a.errors > 0 {
		r.Error = fmt.Sprintf("no member has a usable value: %d failed (first: %s)", a.errors, a.firstErr)
		return r
	}
	switch a.typ {
	case v1alpha1.InsightTopValues:
		r.Values = top(a.counts, a.limit)
		return r
	}
	if a.members == 0 {
		return r
	}
	switch a.typ {
	case v1alpha1.InsightSum:
		r.Value = format(a.sum)
	case v1alpha1.InsightAverage:
		r.Value = format(a.sum / float64(a.members))
	case v1alpha1.InsightMin:
		r.Value = format(a.min)
	case v1alpha1.InsightMax:
		r.Value = format(a.max)
	}
	return r
}

// Errors is how many members had no usable value.
func (a *Accumulator) Errors() int64 { return a.errors }

// top returns the most frequent values, ties broken by value.
func top(counts map[string]int64, limit int) []v1alpha1.InsightValue {
	out := make([]v1alpha1.InsightValue, 0, len(counts))
	for v, c := range counts {
		out = append(out, v1alpha1.InsightValue{Value: v, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func number(v ref.Val) (float64, bool) {
	switch x := v.(type) {
	case types.Int:
		return float64(x), true
	case types.Uint:
		return float64(x), true
	case types.Double:
		return float64(x), !math.IsNaN(float64(x))
	}
	return 0, false
}

// format renders a number without exponent, rounded to 2 decimals.
func format(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// Render renders a CEL value for status, bounded to MaxValueLength bytes.
func Render(v ref.Val) string {
	var s string
	switch x := v.(type) {
	case types.String:
		s = string(x)
	case types.Int:
		s = strconv.FormatInt(int64(x), 10)
	case types.Uint:
		s = strconv.FormatUint(uint64(x), 10)
	case types.Double:
		s = strconv.FormatFloat(float64(x), 'g', -1, 64)
	case types.Bool:
		s = strconv.FormatBool(bool(x))
	case types.Timestamp:
		s = x.Time.UTC().Format(time.RFC3339)
	case types.Duration:
		s = x.Duration.String()
	case types.Null:
		s = "null"
	default:
		s = v.Type().TypeName()
	}
	return truncate(s, MaxValueLength)
}

// truncate bounds s to n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
