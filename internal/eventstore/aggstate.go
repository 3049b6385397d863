package eventstore

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Event is what the aggregates read of one stored call of a user.
type Event struct {
	MessageID string
	Type      string
	Event     string
	// Properties is the stored payload (track properties; traits for
	// identify and group), a JSON object.
	Properties json.RawMessage
	Time       time.Time
}

// UserAggregates is one user's aggregate state for one source's aggregates,
// kept so that a new event updates the values without reading the user's
// history again: what a windowed aggregate needs of each event still in its
// window, and running totals for the others. Its values at any instant equal
// what profileSQL computes from the stored events (a test compares both),
// provided time only moves forward and every stored event of the user was
// added once. Not safe for concurrent use.
type UserAggregates struct {
	aggs  []Aggregate
	state []aggState
}

// aggState is one aggregate's state. points are the matching events that
// can still change the value, by time: for a windowed aggregate every event
// after the window's start (those after now come in later), for the others
// only the events after now (the rest are in the totals).
type aggState struct {
	points []point

	count   int64
	sum     float64
	summed  bool
	days    map[int64]struct{}
	first   time.Time
	last    time.Time
	valueAt time.Time
	value   json.RawMessage
}

// point is what one event adds to one aggregate.
type point struct {
	at time.Time
	// num is the property's value when numeric is set (Sum).
	num     float64
	numeric bool
	// raw is the property as stored (LastValue), nil when absent.
	raw json.RawMessage
}

// NewUserAggregates returns an empty state for a source's aggregates.
func NewUserAggregates(aggs []Aggregate) *UserAggregates {
	return &UserAggregates{aggs: aggs, state: make([]aggState, len(aggs))}
}

// Add adds one stored event of the user.
func (u *UserAggregates) Add(e Event) {
	at := e.Time.Truncate(time.Microsecond) // what PostgreSQL stores
	var props map[string]json.RawMessage
	for i, a := range u.aggs {
		if !matches(a, e) {
			continue
		}
		p := point{at: at}
		if a.Property != "" {
			if props == nil {
				_ = json.Unmarshal(e.Properties, &props) // stored payloads are objects
			}
			p.raw = props[a.Property]
			p.num, p.numeric = number(p.raw)
		}
		st := &u.state[i]
		n, _ := slices.BinarySearchFunc(st.points, at, func(q point, t time.Time) int { return q.at.Compare(t) })
		// After the events of the same instant: the later arrival is the
		// newer value.
		for n < len(st.points) && st.points[n].at.Equal(at) {
			n++
		}
		st.points = slices.Insert(st.points, n, p)
	}
}

// matches is profileSQL's match condition.
func matches(a Aggregate, e Event) bool {
	if (a.Function == v1alpha1.AggregateFirstSeen || a.Function == v1alpha1.AggregateLastSeen) && a.Event == "" {
		return true // any call of the user
	}
	return e.Type == "track" && (a.Event == "" || e.Event == a.Event)
}

// number is a JSON number's value (jsonb_typeof 'number').
func number(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// Values are the aggregates at now, by name (absent: no value, as a NULL
// column), and the next instant one may change as time passes (zero: none).
// seen is the user's row's first and last seen, which FirstSeen and LastSeen
// of any call combine with the events. now must not go back between calls:
// events that left a window are dropped.
func (u *UserAggregates) Values(now time.Time, firstSeen, lastSeen time.Time) (map[string]any, time.Time) {
	values := make(map[string]any, len(u.aggs))
	var next time.Time
	edge := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i, a := range u.aggs {
		st := &u.state[i]
		var v any
		if a.Window > 0 {
			v = st.windowed(a, now, edge)
		} else {
			v = st.total(a, now, edge, firstSeen, lastSeen)
		}
		if v != nil {
			values[a.Name] = v
		}
	}
	return values, next
}

// windowed drops the points that left the window and computes the value
// over those up to now.
func (st *aggState) windowed(a Aggregate, now time.Time, edge func(time.Time)) any {
	start := now.Add(-a.Window)
	drop := 0
	for drop < len(st.points) && !st.points[drop].at.After(start) {
		drop++
	}
	st.points = st.points[drop:]
	var (
		count  int64
		sum    float64
		summed bool
		days   map[int64]struct{}
	)
	for _, p := range st.points {
		if p.at.After(now) {
			edge(p.at) // comes into the window
			break
		}
		count++
		if p.numeric {
			sum, summed = sum+p.num, true
		}
		if a.Function == v1alpha1.AggregateDistinctDays {
			if days == nil {
				days = map[int64]struct{}{}
			}
			days[utcDay(p.at)] = struct{}{}
		}
	}
	if count > 0 {
		edge(st.points[0].at.Add(a.Window)) // the oldest leaves the window
	}
	switch a.Function {
	case v1alpha1.AggregateDistinctDays:
		return int64(len(days))
	case v1alpha1.AggregateSum:
		if summed {
			return sum
		}
		return nil
	default:
		return count
	}
}

// total folds the points up to now into the running totals and gives the
// value.
func (st *aggState) total(a Aggregate, now time.Time, edge func(time.Time), firstSeen, lastSeen time.Time) any {
	n := 0
	for ; n < len(st.points) && !st.points[n].at.After(now); n++ {
		st.fold(a, st.points[n])
	}
	st.points = st.points[n:]
	if len(st.points) > 0 {
		edge(st.points[0].at)
	}
	switch a.Function {
	case v1alpha1.AggregateCount:
		return st.count
	case v1alpha1.AggregateDistinctDays:
		return int64(len(st.days))
	case v1alpha1.AggregateSum:
		if st.summed {
			return st.sum
		}
	case v1alpha1.AggregateFirstSeen:
		return earliest(st.first, a.Event == "", firstSeen)
	case v1alpha1.AggregateLastSeen:
		return latest(st.last, a.Event == "", lastSeen)
	case v1alpha1.AggregateLastValue:
		if st.value != nil {
			var v any
			if json.Unmarshal(st.value, &v) == nil && v != nil {
				return v
			}
		}
	}
	return nil
}

// fold adds a point to the totals its function keeps.
func (st *aggState) fold(a Aggregate, p point) {
	switch a.Function {
	case v1alpha1.AggregateCount:
		st.count++
	case v1alpha1.AggregateSum:
		if p.numeric {
			st.sum, st.summed = st.sum+p.num, true
		}
	case v1alpha1.AggregateDistinctDays:
		if st.days == nil {
			st.days = map[int64]struct{}{}
		}
		st.days[utcDay(p.at)] = struct{}{}
	case v1alpha1.AggregateFirstSeen:
		if st.first.IsZero() || p.at.Before(st.first) {
			st.first = p.at
		}
	case v1alpha1.AggregateLastSeen:
		if p.at.After(st.last) {
			st.last = p.at
		}
	case v1alpha1.AggregateLastValue:
		// The newest event that has the property; of one instant, the later arrival.
		if p.raw != nil && !p.at.Before(st.valueAt) {
			st.valueAt, st.value = p.at, p.raw
		}
	}
}

// earliest is min over the events, with the row's first seen for any call
// (least() ignores NULLs).
func earliest(events time.Time, withRow bool, row time.Time) any {
	switch {
	case withRow && !row.IsZero() && (events.IsZero() || row.Before(events)):
		return row.UTC()
	case events.IsZero():
		return nil
	}
	return events.UTC()
}

func latest(events time.Time, withRow bool, row time.Time) any {
	switch {
	case withRow && !row.IsZero() && (events.IsZero() || row.After(events)):
		return row.UTC()
	case events.IsZero():
		return nil
	}
	return events.UTC()
}

// utcDay numbers the UTC calendar day of t.
func utcDay(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}
