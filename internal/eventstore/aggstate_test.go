package eventstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

// equivalenceAggs covers every function, windowed and not, with and without
// an event name.
var equivalenceAggs = []v1alpha1.EventAggregate{
	{Name: "runs3d", Function: v1alpha1.AggregateCount, Event: "run", Window: "3d"},
	{Name: "runs", Function: v1alpha1.AggregateCount, Event: "run"},
	{Name: "tracks", Function: v1alpha1.AggregateCount},
	{Name: "days2d", Function: v1alpha1.AggregateDistinctDays, Event: "run", Window: "2d"},
	{Name: "days", Function: v1alpha1.AggregateDistinctDays},
	{Name: "firstRun", Function: v1alpha1.AggregateFirstSeen, Event: "run"},
	{Name: "first", Function: v1alpha1.AggregateFirstSeen},
	{Name: "lastBuy", Function: v1alpha1.AggregateLastSeen, Event: "buy"},
	{Name: "last", Function: v1alpha1.AggregateLastSeen},
	{Name: "plan", Function: v1alpha1.AggregateLastValue, Event: "buy", Property: "plan"},
	{Name: "anyN", Function: v1alpha1.AggregateLastValue, Property: "n"},
	{Name: "seats1d", Function: v1alpha1.AggregateSum, Event: "buy", Property: "n", Window: "1d"},
	{Name: "seats", Function: v1alpha1.AggregateSum, Event: "buy", Property: "n"},
}

// randomCall is a call of one of users at a distinct time around t0 (ties
// in time have no defined order in SQL), some in the future.
func randomCall(r *rand.Rand, seq int, users []string) tracking.Call {
	at := t0.Add(time.Duration(r.IntN(8*24*3600))*time.Second - 6*24*time.Hour).Add(time.Duration(seq) * time.Microsecond)
	c := tracking.Call{MessageID: fmt.Sprint("m", seq), UserID: users[r.IntN(len(users))], Timestamp: at}
	switch r.IntN(6) {
	case 0:
		c.Type, c.Traits = tracking.Identify, []byte(fmt.Sprintf(`{"plan":"p%d"}`, r.IntN(3)))
	case 1:
		c.Type, c.Event, c.Properties = tracking.Page, "run", []byte(`{}`)
	case 2, 3:
		c.Type, c.Event, c.Properties = tracking.Track, "run", []byte(fmt.Sprintf(`{"n":%d}`, r.IntN(5)))
	default:
		props := []string{`{"n":2,"plan":"team"}`, `{"n":"many"}`, `{"plan":null}`, `{"n":-1.5,"plan":"pro"}`, `{}`}
		c.Type, c.Event, c.Properties = tracking.Track, "buy", []byte(props[r.IntN(len(props))])
	}
	return c
}

// TestIncrementalAggregatesEqualTheStoreQuery: a state built from a user's
// stored events, then fed the later events as they are written, gives at
// every instant (time moving forward past window edges and future events)
// the values and next change the full query computes from the store.
func TestIncrementalAggregatesEqualTheStoreQuery(t *testing.T) {
	aggs, err := Compile(equivalenceAggs)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			s, _ := open(t)
			ctx := context.Background()
			r := rand.New(rand.NewPCG(seed, 7))
			users := []string{"u1", "u2", "u3", "u4"}
			var calls []tracking.Call
			for i := range 120 {
				calls = append(calls, randomCall(r, i, users))
			}
			// The first half is stored before the state is built from the store.
			if _, err := s.Write(ctx, "ns", calls[:60], t0); err != nil {
				t.Fatal(err)
			}
			states := map[string]*UserAggregates{}
			for _, u := range users {
				states[u] = NewUserAggregates(aggs)
			}
			if err := s.UserEvents(ctx, "ns", users, func(u string, e Event, _ time.Time) error {
				states[u].Add(e)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			now := t0.Add(-3 * 24 * time.Hour)
			compare(t, s, aggs, states, users, now)
			for part := range 6 {
				batch := calls[60+10*part : 70+10*part]
				w, err := s.Write(ctx, "ns", batch, t0)
				if err != nil || w.Inserted != len(batch) {
					t.Fatalf("write: %+v %v", w, err)
				}
				for _, c := range batch {
					states[c.UserID].Add(EventOf(c))
				}
				now = now.Add(time.Duration(r.IntN(20*3600)) * time.Second)
				compare(t, s, aggs, states, users, now)
			}
		})
	}
}

func compare(t *testing.T, s *Store, aggs []Aggregate, states map[string]*UserAggregates, users []string, now time.Time) {
	t.Helper()
	want := profiles(t, s, "ns", aggs, users, now)
	got := map[string]*Profile{}
	if err := s.Users(context.Background(), "ns", users, func(r *UserRow) error {
		got[r.UserID] = r.Profile(states[r.UserID], now)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("at %v: %d users from the rows, %d from the query", now, len(got), len(want))
	}
	for u, w := range want {
		g := got[u]
		if !reflect.DeepEqual(g.Values, w.Values) {
			t.Errorf("at %v, %s: incremental %v\nquery %v", now, u, g.Values, w.Values)
		}
		if !g.Next.Equal(w.Next) {
			t.Errorf("at %v, %s: next change %v, query %v", now, u, g.Next, w.Next)
		}
		if !reflect.DeepEqual(g.Traits, w.Traits) || g.AccountID != w.AccountID || !reflect.DeepEqual(g.Group, w.Group) {
			t.Errorf("at %v, %s: row %+v, query %+v", now, u, g, w)
		}
	}
}

// TestWriteNamesNewUsers: a write says which users the store did not know,
// so their aggregate state starts empty instead of read from the store.
func TestWriteNamesNewUsers(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	w, err := s.Write(ctx, "ns", []tracking.Call{track("a", "u1", "login", t0, `{}`), track("b", "u2", "login", t0, `{}`)}, t0)
	if err != nil || fmt.Sprint(w.NewUsers) != "[u1 u2]" {
		t.Fatalf("first write: new %v, %v", w.NewUsers, err)
	}
	w, err = s.Write(ctx, "ns", []tracking.Call{track("c", "u1", "login", t0, `{}`), track("d", "u3", "login", t0, `{}`)}, t0)
	if err != nil || fmt.Sprint(w.NewUsers) != "[u3]" || fmt.Sprint(w.Users) != "[u1 u3]" || len(w.Calls) != 2 {
		t.Fatalf("second write: %+v, %v", w, err)
	}
	if w, err = s.Write(ctx, "other", []tracking.Call{track("a", "u1", "login", t0, `{}`)}, t0); err != nil || fmt.Sprint(w.NewUsers) != "[u1]" {
		t.Fatalf("another namespace: new %v, %v", w.NewUsers, err)
	}
}
