package eventstore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// reference computes the aggregates at now from every event, the way
// profileSQL defines them, with no state: what UserAggregates must equal.
func reference(aggs []Aggregate, events []Event, now, firstSeen, lastSeen time.Time) (map[string]any, time.Time) {
	values := map[string]any{}
	var next time.Time
	edge := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, a := range aggs {
		var in []Event // matching, up to now, inside the window if any; in arrival order
		for _, e := range events {
			e.Time = e.Time.Truncate(time.Microsecond)
			if !matches(a, e) {
				continue
			}
			if e.Time.After(now) {
				edge(e.Time)
				continue
			}
			if a.Window > 0 && !e.Time.After(now.Add(-a.Window)) {
				continue
			}
			in = append(in, e)
		}
		if a.Window > 0 && len(in) > 0 {
			oldest := slices.MinFunc(in, func(x, y Event) int { return x.Time.Compare(y.Time) })
			edge(oldest.Time.Add(a.Window))
		}
		if v := value(a, in, firstSeen, lastSeen); v != nil {
			values[a.Name] = v
		}
	}
	return values, next
}

func value(a Aggregate, in []Event, firstSeen, lastSeen time.Time) any {
	prop := func(e Event) json.RawMessage {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(e.Properties, &m)
		return m[a.Property]
	}
	switch a.Function {
	case v1alpha1.AggregateCount:
		return int64(len(in))
	case v1alpha1.AggregateDistinctDays:
		days := map[string]bool{}
		for _, e := range in {
			days[e.Time.UTC().Format(time.DateOnly)] = true
		}
		return int64(len(days))
	case v1alpha1.AggregateSum:
		var sum any
		for _, e := range in {
			var f float64
			if json.Unmarshal(prop(e), &f) == nil && len(prop(e)) > 0 && prop(e)[0] != '"' {
				if sum == nil {
					sum = 0.0
				}
				sum = sum.(float64) + f
			}
		}
		return sum
	case v1alpha1.AggregateFirstSeen, v1alpha1.AggregateLastSeen:
		var t time.Time
		first := a.Function == v1alpha1.AggregateFirstSeen
		for _, e := range in {
			if t.IsZero() || (first && e.Time.Before(t)) || (!first && e.Time.After(t)) {
				t = e.Time
			}
		}
		if first {
			return earliest(t, a.Event == "", firstSeen)
		}
		return latest(t, a.Event == "", lastSeen)
	case v1alpha1.AggregateLastValue:
		var best *Event
		for i, e := range in {
			if prop(e) != nil && (best == nil || !e.Time.Before(best.Time)) {
				best = &in[i]
			}
		}
		if best != nil {
			var v any
			if json.Unmarshal(prop(*best), &v) == nil && v != nil {
				return v
			}
		}
	}
	return nil
}

// FuzzUserAggregates: any sequence of added events and forward moves of
// time gives, after each move, the values and next change the stateless
// reference computes from every event.
//
//	go test ./internal/eventstore/ -run '^$' -fuzz FuzzUserAggregates -fuzztime 30s
func FuzzUserAggregates(f *testing.F) {
	aggs, err := Compile(equivalenceAggs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{1, 2, 3, 200, 4, 5, 6, 7, 201, 8, 9, 250, 251})
	f.Add([]byte{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 255, 255, 255})
	props := []string{`{"n":2,"plan":"team"}`, `{"n":"many"}`, `{"plan":null}`, `{"n":-3,"plan":"pro"}`, `{}`}
	kinds := []struct{ typ, event string }{{"track", "run"}, {"track", "buy"}, {"page", "run"}, {"identify", ""}}
	f.Fuzz(func(t *testing.T, ops []byte) {
		state := NewUserAggregates(aggs)
		var events []Event
		now := t0
		firstSeen, lastSeen := t0.Add(-10*24*time.Hour), t0.Add(-10*24*time.Hour)
		for i, op := range ops {
			if op >= 200 { // time moves forward by 1 to 56 hours
				now = now.Add(time.Duration(op-199) * time.Hour)
				got, gotNext := state.Values(now, firstSeen, lastSeen)
				want, wantNext := reference(aggs, events, now, firstSeen, lastSeen)
				if !reflect.DeepEqual(got, want) || !gotNext.Equal(wantNext) {
					t.Fatalf("after %d ops at %v:\nstate     %v next %v\nreference %v next %v", i, now, got, gotNext, want, wantNext)
				}
				continue
			}
			k := kinds[int(op)%len(kinds)]
			// Around now: from 4 days before to 2 days after, by the hour and a second.
			at := now.Add(time.Duration(int(op)%144-96)*time.Hour + time.Duration(i)*time.Second)
			e := Event{MessageID: fmt.Sprint(i), Type: k.typ, Event: k.event, Properties: json.RawMessage(props[int(op)/7%len(props)]), Time: at}
			events = append(events, e)
			state.Add(e)
		}
	})
}
