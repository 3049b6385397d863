package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

var srv *pgtest.Server

// databases numbers the databases tests and benchmarks create.
var databases atomic.Int64

func TestMain(m *testing.M) {
	pgtest.Main(m, func(s *pgtest.Server) error { srv = s; return nil })
}

// open gives each test its own database, so tests never see each other's rows.
func open(t testing.TB) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("%s_%d", strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())), databases.Add(1))
	dsn, err := srv.CreateDatabase(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func track(id, user, event string, at time.Time, props string) tracking.Call {
	return tracking.Call{Type: tracking.Track, MessageID: id, UserID: user, Event: event, Properties: json.RawMessage(props), Timestamp: at}
}

func profiles(t *testing.T, s *Store, ns string, aggs []Aggregate, users []string, now time.Time) map[string]*Profile {
	t.Helper()
	out := map[string]*Profile{}
	if err := s.Profiles(context.Background(), ns, aggs, users, now, func(p *Profile) error {
		out[p.UserID] = p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteDeduplicatesByMessageIDPerNamespace(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	calls := []tracking.Call{track("m1", "u1", "login", t0, `{}`), track("m2", "u2", "login", t0, `{}`)}
	w, err := s.Write(ctx, "team-a", calls, t0)
	if err != nil || w.Inserted != 2 || fmt.Sprint(w.Users) != "[u1 u2]" {
		t.Fatalf("first write: %+v, %v", w, err)
	}
	// A retry of the same request, plus one new call: only the new one lands.
	w, err = s.Write(ctx, "team-a", append(calls, track("m3", "u1", "login", t0, `{}`)), t0)
	if err != nil || w.Inserted != 1 || fmt.Sprint(w.Users) != "[u1]" {
		t.Fatalf("retry: %+v, %v", w, err)
	}
	// The same messageId in another namespace is another event.
	if w, err = s.Write(ctx, "team-b", calls[:1], t0); err != nil || w.Inserted != 1 {
		t.Fatalf("other namespace: %+v, %v", w, err)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if n, err := s.Count(ctx, ns, "m1"); err != nil || n != 1 {
			t.Errorf("%s holds m1 %d times (%v), want once", ns, n, err)
		}
	}
	aggs, err := Compile([]v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login"}})
	if err != nil {
		t.Fatal(err)
	}
	a := profiles(t, s, "team-a", aggs, nil, t0)
	b := profiles(t, s, "team-b", aggs, nil, t0)
	if a["u1"].Values["logins"] != int64(2) || a["u2"].Values["logins"] != int64(1) || len(b) != 1 || b["u1"].Values["logins"] != int64(1) {
		t.Errorf("team-a %v %v, team-b %v: namespaces must not mix", a["u1"].Values, a["u2"].Values, b)
	}
}

func TestTraitsAndGroups(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	calls := []tracking.Call{
		{Type: tracking.Identify, MessageID: "i1", UserID: "u1", Traits: json.RawMessage(`{"plan":"free","role":"admin"}`), Timestamp: t0},
		{Type: tracking.Identify, MessageID: "i2", UserID: "u1", Traits: json.RawMessage(`{"plan":"pro"}`), Timestamp: t0.Add(time.Second)},
		{Type: tracking.Group, MessageID: "g1", UserID: "u1", GroupID: "acme", Traits: json.RawMessage(`{"industry":"retail"}`), Timestamp: t0},
		{Type: tracking.Group, MessageID: "g2", AnonymousID: "anon", GroupID: "acme", Traits: json.RawMessage(`{"seats":12}`), Timestamp: t0},
		{Type: tracking.Identify, MessageID: "i3", AnonymousID: "anon", Traits: json.RawMessage(`{"plan":"x"}`), Timestamp: t0},
		track("t1", "u1", "login", t0.Add(-time.Hour), `{}`),
	}
	if _, err := s.Write(ctx, "ns", calls, t0); err != nil {
		t.Fatal(err)
	}
	seen, err := Compile([]v1alpha1.EventAggregate{{Name: "last", Function: v1alpha1.AggregateLastSeen},
		{Name: "lastLogin", Function: v1alpha1.AggregateLastSeen, Event: "login"}})
	if err != nil {
		t.Fatal(err)
	}
	got := profiles(t, s, "ns", seen, nil, t0.Add(time.Minute))
	if last := got["u1"].Values; last["last"] != t0.Add(time.Second) || last["lastLogin"] != t0.Add(-time.Hour) {
		t.Errorf("last seen %v: any call counts, a named event only its track calls", last)
	}
	if len(got) != 1 {
		t.Fatalf("profiles %v: anonymous calls make no profile", got)
	}
	p := got["u1"]
	if p.Traits["plan"] != "pro" || p.Traits["role"] != "admin" || p.AccountID != "acme" ||
		p.Group["industry"] != "retail" || p.Group["seats"] != float64(12) {
		t.Errorf("profile %+v", p)
	}
	users, err := s.AccountUsers(ctx, "ns", "acme")
	if err != nil || fmt.Sprint(users) != "[u1]" {
		t.Errorf("AccountUsers = %v, %v", users, err)
	}
	rec := p.Record(1)
	if v, _ := rec.Get("group.industry"); v != "retail" {
		t.Errorf("record %v", rec)
	}
	if v, _ := rec.Get("accountId"); v != "acme" {
		t.Errorf("record %v", rec)
	}
}

func TestAggregatesSlideWithTime(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	day := 24 * time.Hour
	var calls []tracking.Call
	// workflows on days -20, -10, -5 (twice) and -1; a seat purchase with a
	// numeric and a non-numeric quantity; a plan change.
	for i, d := range []time.Duration{20 * day, 10 * day, 5 * day, 5*day - time.Hour, day} {
		calls = append(calls, track(fmt.Sprint("w", i), "u1", "workflow_run", t0.Add(-d), `{}`))
	}
	calls = append(calls,
		track("s1", "u1", "seats_added", t0.Add(-2*day), `{"n":3}`),
		track("s2", "u1", "seats_added", t0.Add(-day), `{"n":"many"}`),
		track("s3", "u1", "seats_added", t0.Add(-time.Hour), `{"n":2.5}`),
		track("p1", "u1", "plan_changed", t0.Add(-3*day), `{"plan":"team"}`),
		track("p2", "u1", "plan_changed", t0.Add(-2*day), `{"plan":"enterprise"}`),
		track("p3", "u1", "plan_changed", t0.Add(-day), `{"other":1}`),
	)
	if _, err := s.Write(ctx, "ns", calls, t0); err != nil {
		t.Fatal(err)
	}
	aggs, err := Compile([]v1alpha1.EventAggregate{
		{Name: "runs14d", Function: v1alpha1.AggregateCount, Event: "workflow_run", Window: "14d"},
		{Name: "days14d", Function: v1alpha1.AggregateDistinctDays, Event: "workflow_run", Window: "14d"},
		{Name: "firstRun", Function: v1alpha1.AggregateFirstSeen, Event: "workflow_run"},
		{Name: "lastSeen", Function: v1alpha1.AggregateLastSeen},
		{Name: "plan", Function: v1alpha1.AggregateLastValue, Event: "plan_changed", Property: "plan"},
		{Name: "seats", Function: v1alpha1.AggregateSum, Event: "seats_added", Property: "n"},
		{Name: "total", Function: v1alpha1.AggregateCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := profiles(t, s, "ns", aggs, []string{"u1"}, t0)["u1"]
	want := map[string]any{
		"runs14d": int64(4), "days14d": int64(3), "firstRun": t0.Add(-20 * day), "lastSeen": t0.Add(-time.Hour),
		"plan": "enterprise", "seats": 5.5, "total": int64(11),
	}
	for k, v := range want {
		if fmt.Sprint(p.Values[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, p.Values[k], v)
		}
	}
	// The oldest workflow in the window (day -10) leaves it first.
	if wantNext := t0.Add(-10 * day).Add(14 * day); !p.Next.Equal(wantNext) {
		t.Errorf("next change %v, want %v", p.Next, wantNext)
	}
	// Just past that instant the count dropped; a new Store (a restart)
	// computes the same from what is stored.
	restarted, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	later := profiles(t, restarted, "ns", aggs, nil, p.Next.Add(time.Millisecond))["u1"]
	if later.Values["runs14d"] != int64(3) || later.Values["days14d"] != int64(2) {
		t.Errorf("after the edge: runs %v days %v, want 3 and 2", later.Values["runs14d"], later.Values["days14d"])
	}
	if wantNext := t0.Add(-5 * day).Add(14 * day); !later.Next.Equal(wantNext) {
		t.Errorf("next change %v, want %v", later.Next, wantNext)
	}
}

func TestFutureEventIsAnEdge(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.Write(ctx, "ns", []tracking.Call{track("f", "u1", "login", t0.Add(30*time.Minute), `{}`)}, t0); err != nil {
		t.Fatal(err)
	}
	aggs, _ := Compile([]v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login"}})
	p := profiles(t, s, "ns", aggs, nil, t0)["u1"]
	if _, ok := p.Values["logins"]; ok && p.Values["logins"] != int64(0) {
		t.Errorf("a future event counts already: %v", p.Values)
	}
	if !p.Next.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("next %v, want the event's time", p.Next)
	}
}

func TestPruneAndErase(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	// The user's row is made by the newest call; the older ones, sent later
	// (a backfill), leave it as it is: FoldSeen keeps their first seen.
	if _, err := s.Write(ctx, "ns", []tracking.Call{track("new", "u1", "e", t0, `{}`), track("other", "u2", "e", t0, `{}`)}, t0); err != nil {
		t.Fatal(err)
	}
	var calls []tracking.Call
	for i := range 25 {
		calls = append(calls, track(fmt.Sprint("old", i), "u1", "e", t0.Add(-100*24*time.Hour), `{}`))
	}
	if _, err := s.Write(ctx, "ns", calls, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.FoldSeen(ctx, "ns", t0.Add(-v1alpha1.DefaultRetention)); err != nil {
		t.Fatal(err)
	}
	var pruned int64
	for {
		n, err := s.Prune(ctx, "ns", t0.Add(-v1alpha1.DefaultRetention), 10)
		if err != nil {
			t.Fatal(err)
		}
		if pruned += n; n < 10 {
			break
		}
	}
	if pruned != 25 {
		t.Errorf("pruned %d, want 25", pruned)
	}
	aggs, _ := Compile([]v1alpha1.EventAggregate{{Name: "first", Function: v1alpha1.AggregateFirstSeen}, {Name: "n", Function: v1alpha1.AggregateCount}})
	p := profiles(t, s, "ns", aggs, nil, t0)["u1"]
	if p.Values["n"] != int64(1) || !p.Values["first"].(time.Time).Equal(t0.Add(-100*24*time.Hour)) {
		t.Errorf("after pruning %v: first seen survives pruning", p.Values)
	}
	n, err := s.Erase(ctx, "ns", "u1")
	if err != nil || n != 1 {
		t.Fatalf("Erase = %d, %v", n, err)
	}
	left := profiles(t, s, "ns", aggs, nil, t0)
	if _, ok := left["u1"]; ok || len(left) != 1 {
		t.Errorf("after erasure: %v", left)
	}
	if c, _ := s.Count(ctx, "ns", "new"); c != 0 {
		t.Errorf("u1's event is still stored")
	}
}

func TestCompileRejects(t *testing.T) {
	for _, tt := range []struct {
		spec v1alpha1.EventAggregate
		want string
	}{
		{v1alpha1.EventAggregate{Name: "a", Function: v1alpha1.AggregateSum}, "needs property"},
		{v1alpha1.EventAggregate{Name: "a", Function: v1alpha1.AggregateLastSeen, Window: "3d"}, "window is for"},
		{v1alpha1.EventAggregate{Name: "a", Function: v1alpha1.AggregateCount, Window: "3w"}, "not a number of days"},
		{v1alpha1.EventAggregate{Name: "a", Function: "Median"}, "unknown function"},
	} {
		if _, err := Compile([]v1alpha1.EventAggregate{tt.spec}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.spec, err, tt.want)
		}
	}
	dup := []v1alpha1.EventAggregate{{Name: "a", Function: v1alpha1.AggregateCount}, {Name: "a", Function: v1alpha1.AggregateCount}}
	if _, err := Compile(dup); err == nil {
		t.Error("a name used twice compiles")
	}
}
