package explain

import (
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Bounds on a rendered value, so a profile with a long list stays readable.
const (
	maxValueLength = 256
	maxElements    = 10
)

// Format renders a CEL value the way it would be written in a rule: strings
// quoted, timestamps in RFC 3339, durations as Go durations, lists and maps
// with their first elements.
func Format(v ref.Val) string {
	s := format(v)
	if len(s) > maxValueLength {
		s = s[:maxValueLength] + "…"
	}
	return s
}

// prefix is as much of s as can show in maxValueLength characters once
// quoted (quoting never shortens), cut at a rune boundary: a 4 MiB value is
// not quoted whole to show its first 256 characters.
func prefix(s string) string {
	if len(s) <= maxValueLength+utf8.UTFMax {
		return s
	}
	cut := maxValueLength + utf8.UTFMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func format(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return strconv.Quote(prefix(string(x)))
	case types.Int:
		return strconv.FormatInt(int64(x), 10)
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10) + "u"
	case types.Double:
		return strconv.FormatFloat(float64(x), 'g', -1, 64)
	case types.Bool:
		return strconv.FormatBool(bool(x))
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano)
	case types.Duration:
		// Milliseconds: `T - now` carries nanoseconds of noise from the clock.
		return x.Duration.Round(time.Millisecond).String()
	case types.Null:
		return "null"
	case types.Bytes:
		return "b" + strconv.Quote(prefix(string(x)))
	case *types.Err:
		return "error: " + x.Error()
	}
	if l, ok := v.(traits.Lister); ok {
		return formatList(l)
	}
	if m, ok := v.(traits.Mapper); ok {
		return formatMap(m)
	}
	if t, ok := v.(ref.Type); ok {
		return t.TypeName()
	}
	return v.Type().TypeName()
}

func formatList(l traits.Lister) string {
	n, _ := l.Size().(types.Int)
	var parts []string
	for it := l.Iterator(); it.HasNext() == types.True && len(parts) < maxElements; {
		parts = append(parts, format(it.Next()))
	}
	if rest := int(n) - len(parts); rest > 0 {
		parts = append(parts, "…"+strconv.Itoa(rest)+" more")
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func formatMap(m traits.Mapper) string {
	var keys []ref.Val
	for it := m.Iterator(); it.HasNext() == types.True; {
		keys = append(keys, it.Next())
	}
	// Sorted by rendered key: map order is random and explanations are diffed.
	sort.Slice(keys, func(i, j int) bool { return format(keys[i]) < format(keys[j]) })
	var parts []string
	for _, k := range keys {
		if len(parts) == maxElements {
			parts = append(parts, "…"+strconv.Itoa(len(keys)-maxElements)+" more")
			break
		}
		parts = append(parts, format(k)+": "+format(m.Get(k)))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
