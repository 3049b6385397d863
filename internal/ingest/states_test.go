package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

// TestLateCallIsNotAddedTwice: a call whose request committed before the
// user's state was read from the store, but which reaches the loop after,
// is in the state once.
func TestLateCallIsNotAddedTwice(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	aggs, _ := eventstore.Compile([]v1alpha1.EventAggregate{logins14d})
	c := tracking.Call{Type: tracking.Track, MessageID: "late", UserID: "u1", Event: "login", Properties: []byte(`{}`), Timestamp: t0.Add(-time.Hour)}
	w, err := e.events.Write(ctx, "ns", []tracking.Call{c}, t0)
	if err != nil {
		t.Fatal(err)
	}
	states := newUserStates(aggs)
	states.add(w.Calls, t0) // no state yet: skipped, the read has it
	if err := states.load(ctx, e.events, "ns", []string{"u1"}, t0); err != nil {
		t.Fatal(err)
	}
	states.add(w.Calls, t0.Add(time.Second)) // the late arrival
	if v, _ := states.get("u1").Values(t0, time.Time{}, time.Time{}); v["logins"] != int64(1) {
		t.Errorf("logins = %v, want 1", v["logins"])
	}
	// A new call after the read is added.
	c2 := c
	c2.MessageID, c2.Timestamp = "next", t0.Add(-time.Minute)
	states.add([]tracking.Call{c2}, t0.Add(2*time.Second))
	if v, _ := states.get("u1").Values(t0, time.Time{}, time.Time{}); v["logins"] != int64(2) {
		t.Errorf("logins = %v, want 2", v["logins"])
	}
	states.forget("u1")
	if states.get("u1") != nil || states.len() != 0 {
		t.Error("forget kept the state")
	}
}

// TestKeptStatesEqualAFullLoad: users updated event by event from their
// kept states (a source with every kind of aggregate), then time moved past
// window edges, hold the attributes a full load from the store gives.
func TestKeptStatesEqualAFullLoad(t *testing.T) {
	e := start(t)
	aggs := []v1alpha1.EventAggregate{logins14d,
		{Name: "loginDays", Function: v1alpha1.AggregateDistinctDays, Event: "login", Window: "7d"},
		{Name: "seats", Function: v1alpha1.AggregateSum, Event: "buy", Property: "n"},
		{Name: "lastPlan", Function: v1alpha1.AggregateLastValue, Event: "buy", Property: "plan"},
		{Name: "lastSeen", Function: v1alpha1.AggregateLastSeen},
	}
	ds := eventsDS("product", aggs...)
	e.load(t, "team-a", "wk-a", ds)
	day := 24 * time.Hour
	for i := range 30 {
		body := fmt.Sprintf(`{"batch":[
			{"type":"track","messageId":"l%d","userId":"u%d","event":"login","timestamp":%q},
			{"type":"track","messageId":"b%d","userId":"u%d","event":"buy","properties":{"n":%d,"plan":"p%d"},"timestamp":%q}]}`,
			i, i%3, ts(t0.Add(-time.Duration(i%13)*day-time.Duration(i)*time.Minute)), i, i%3, i, i%4, ts(t0.Add(-time.Duration(i)*time.Hour)))
		if s, b := e.post(t, "/v1/batch", "wk-a", body); s != 200 {
			t.Fatalf("%d %v", s, b)
		}
	}
	attrs := []string{"logins", "loginDays", "seats", "lastPlan", "lastSeen"}
	snapshot := func(s *profile.Store) map[string]string {
		out := map[string]string{}
		for u := range 3 {
			s.Namespace("team-a").Read(nil, func(v *profile.View) {
				if p, ok := v.User(fmt.Sprint("u", u)); ok {
					for _, a := range attrs {
						val, _ := p.Get(a)
						out[fmt.Sprint("u", u, ".", a)] = fmt.Sprint(val)
					}
				}
			})
		}
		return out
	}
	for _, now := range []time.Time{t0, t0.Add(3 * day), t0.Add(9 * day)} {
		e.clock.Set(now)
		e.svc.poke()
		fresh := &env{events: e.events, profiles: profile.NewStore(), clock: e.clock}
		fresh.svc = New(e.events, fresh.profiles, nil)
		fresh.svc.SetClock(e.clock.Now)
		fresh.load(t, "team-a", "wk-a", ds)
		want := snapshot(fresh.profiles)
		if len(want) != 3*len(attrs) || want["u0.logins"] == "0" {
			t.Fatalf("full load at %v: %v", now, want)
		}
		e.eventually(t, fmt.Sprint("the kept states at ", now), func() bool { return fmt.Sprint(snapshot(e.profiles)) == fmt.Sprint(want) })
	}
	e.svc.mu.Lock()
	kept := e.svc.sources["team-a"]["product"].states.len()
	e.svc.mu.Unlock()
	if kept != 3 {
		t.Errorf("%d users have a kept state, want 3", kept)
	}
}

// TestStatesAreBounded: past its bound a source drops states, and a dropped
// user's aggregates are read from the store again, still right.
func TestStatesAreBounded(t *testing.T) {
	e := start(t)
	e.svc.mu.Lock()
	states := e.svc.sources["team-a"]["product"].states
	nsLock := e.svc.nsLock["team-a"]
	e.svc.mu.Unlock()
	nsLock.Lock()
	states.max = 10
	nsLock.Unlock()
	for round := range 2 {
		var sb strings.Builder
		sb.WriteString(`{"batch":[`)
		for u := range 30 {
			if u > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"type":"track","messageId":"r%d-%d","userId":"u%d","event":"login","timestamp":%q}`, round, u, u, ts(t0.Add(-time.Hour)))
		}
		sb.WriteString(`]}`)
		if s, b := e.post(t, "/v1/batch", "wk-a", sb.String()); s != 200 {
			t.Fatalf("%d %v", s, b)
		}
		want := fmt.Sprint(round + 1)
		e.eventually(t, "every user's logins", func() bool {
			for u := range 30 {
				if e.get("team-a", fmt.Sprint("u", u), "logins") != want {
					return false
				}
			}
			return true
		})
	}
	// Round 2's pass dropped 21 of round 1's 30 states first: those users'
	// counts of 2 came from the store. The states are used under the
	// namespace's lock.
	nsLock.Lock()
	states.bound()
	n := states.len()
	nsLock.Unlock()
	if n != 9 {
		t.Errorf("%d states after bound, want 9 (nine tenths of 10)", n)
	}
}
