package eventstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Aggregate is a compiled spec.events.aggregates entry.
type Aggregate struct {
	Name     string
	Function v1alpha1.AggregateFunction
	Event    string
	Property string
	// Window is zero for every retained event.
	Window time.Duration
	// Type is the attribute type the value has.
	Type v1alpha1.AttributeType
}

// Compile checks a source's aggregates and gives each its attribute type.
// Errors describe the spec, for a Stalled condition.
func Compile(specs []v1alpha1.EventAggregate) ([]Aggregate, error) {
	out := make([]Aggregate, 0, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		a := Aggregate{Name: s.Name, Function: s.Function, Event: s.Event, Property: s.Property}
		if seen[s.Name] {
			return nil, fmt.Errorf("spec.events.aggregates[%d]: name %q is used twice", i, s.Name)
		}
		seen[s.Name] = true
		if s.Window != "" {
			w, err := v1alpha1.ParseSpan(s.Window)
			if err != nil {
				return nil, fmt.Errorf("spec.events.aggregates[%d] (%s): window %w", i, s.Name, err)
			}
			a.Window = w
		}
		switch s.Function {
		case v1alpha1.AggregateCount, v1alpha1.AggregateDistinctDays, v1alpha1.AggregateFirstSeen, v1alpha1.AggregateLastSeen,
			v1alpha1.AggregateSum, v1alpha1.AggregateLastValue:
			a.Type = s.AttributeType()
		default:
			return nil, fmt.Errorf("spec.events.aggregates[%d] (%s): unknown function %q", i, s.Name, s.Function)
		}
		if (s.Function == v1alpha1.AggregateLastValue || s.Function == v1alpha1.AggregateSum) && s.Property == "" {
			return nil, fmt.Errorf("spec.events.aggregates[%d] (%s): %s needs property", i, s.Name, s.Function)
		}
		if a.Window > 0 && !windowed(s.Function) {
			return nil, fmt.Errorf("spec.events.aggregates[%d] (%s): window is for Count, DistinctDays and Sum", i, s.Name)
		}
		out = append(out, a)
	}
	return out, nil
}

func windowed(f v1alpha1.AggregateFunction) bool {
	return f == v1alpha1.AggregateCount || f == v1alpha1.AggregateDistinctDays || f == v1alpha1.AggregateSum
}

// profileSQL is the query that computes, per user of a namespace, the merged
// traits, the account and its traits, every aggregate and the next instant
// one may change. Values come as parameters, never spliced into the text:
// $1 namespace, $2 users (NULL: all), $3 now, then each aggregate's own.
//
// The next change of an aggregate is the earliest of: the oldest matching
// event in its window leaving it (its time + window), and the earliest
// matching event timestamped after now entering it. At that instant the value
// may change (a DistinctDays count only drops if no other event of that day
// is in the window: recomputing then is correct, only not always needed).
func profileSQL(aggs []Aggregate) (string, []any) {
	args := []any{nil, nil, nil}
	param := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	cols := make([]string, 0, len(aggs))
	edges := make([]string, 0, 2*len(aggs))
	for _, a := range aggs {
		match := "e.type = 'track'"
		if a.Event != "" {
			match += " AND e.event = " + param(a.Event) + "::text"
		}
		if (a.Function == v1alpha1.AggregateFirstSeen || a.Function == v1alpha1.AggregateLastSeen) && a.Event == "" {
			match = "e.ts IS NOT NULL" // any call of the user
		}
		upTo := match + " AND e.ts <= $3"
		inWindow := upTo
		if a.Window > 0 {
			w := param(a.Window.Seconds()) + "::float8 * interval '1 second'"
			inWindow = upTo + " AND e.ts > $3 - " + w
			edges = append(edges, "min(e.ts) FILTER (WHERE "+inWindow+") + "+w)
		}
		edges = append(edges, "min(e.ts) FILTER (WHERE "+match+" AND e.ts > $3)")
		var col string
		switch a.Function {
		case v1alpha1.AggregateCount:
			col = "count(e.ts) FILTER (WHERE " + inWindow + ")"
		case v1alpha1.AggregateDistinctDays:
			col = "count(DISTINCT (e.ts AT TIME ZONE 'UTC')::date) FILTER (WHERE " + inWindow + ")"
		case v1alpha1.AggregateFirstSeen:
			col = "min(e.ts) FILTER (WHERE " + upTo + ")"
			if a.Event == "" {
				col = "least(u.first_seen, " + col + ")"
			}
		case v1alpha1.AggregateLastSeen:
			col = "max(e.ts) FILTER (WHERE " + upTo + ")"
			if a.Event == "" {
				col = "greatest(u.last_seen, " + col + ")"
			}
		case v1alpha1.AggregateLastValue:
			p := param(a.Property) + "::text"
			col = "(array_agg(e.properties -> " + p + " ORDER BY e.ts DESC) FILTER (WHERE " + upTo +
				" AND e.properties -> " + p + " IS NOT NULL))[1]"
		case v1alpha1.AggregateSum:
			p := param(a.Property) + "::text"
			col = "sum((e.properties ->> " + p + ")::float8) FILTER (WHERE " + inWindow +
				" AND jsonb_typeof(e.properties -> " + p + ") = 'number')"
		}
		cols = append(cols, col)
	}
	next := "NULL::timestamptz"
	if len(edges) > 0 {
		next = "least(" + strings.Join(edges, ", ") + ")"
	}
	sel := make([]string, 0, 5+len(cols))
	sel = append(sel, "u.user_id", "u.traits", "u.account_id", "a.traits", next)
	sel = append(sel, cols...)
	q := "SELECT " + strings.Join(sel, ",\n  ") + `
FROM ` + schema + `.users u
LEFT JOIN ` + schema + `.accounts a ON a.namespace = u.namespace AND a.account_id = u.account_id
LEFT JOIN ` + schema + `.events e ON e.namespace = u.namespace AND e.user_id = u.user_id
WHERE u.namespace = $1 AND ($2::text[] IS NULL OR u.user_id = ANY($2::text[])) AND $3::timestamptz IS NOT NULL
GROUP BY u.user_id, u.traits, u.account_id, a.traits, u.first_seen, u.last_seen`
	return q, args
}
