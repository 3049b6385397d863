package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

var srv *pgtest.Server

// databases numbers the databases tests and benchmarks create (a benchmark
// function runs more than once).
var databases atomic.Int64

func TestMain(m *testing.M) {
	if os.Getenv(ingestProcessEnv) != "" {
		os.Exit(m.Run()) // the server process of the SIGKILL test: its database is the parent's
	}
	pgtest.Main(m, func(s *pgtest.Server) error { srv = s; return nil })
}

// clock is the test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

type env struct {
	svc      *Service
	events   *eventstore.Store
	profiles *profile.Store
	url      string
	clock    *clock
	notified chan string
}

func eventsDS(name string, aggs ...v1alpha1.EventAggregate) *v1alpha1.DataSource {
	ds := &v1alpha1.DataSource{}
	ds.Name = name
	ds.Spec = v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceEvents, Entity: v1alpha1.EntityUser,
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "plan", Type: v1alpha1.TypeString},
			{Name: "industry", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount},
		},
		Events: &v1alpha1.EventsSource{WriteKeySecretRef: v1alpha1.SecretKeySelector{Name: "k", Key: "k"}, Aggregates: aggs}}
	return ds
}

var logins14d = v1alpha1.EventAggregate{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login", Window: "14d"}

// start runs the service over a database of its own, with one Events source
// per namespace: team-a (key wk-a) and team-b (key wk-b), both loaded.
func start(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dsn, err := srv.CreateDatabase(ctx, fmt.Sprintf("%s_%d", strings.ToLower(strings.NewReplacer("/", "_").Replace(t.Name())), databases.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(events.Close)
	e := &env{events: events, profiles: profile.NewStore(), clock: &clock{t: t0}, notified: make(chan string, 100)}
	e.svc = New(events, e.profiles, func(ns, name string) {
		select {
		case e.notified <- ns + "/" + name:
		default: // the tests read the first ones; a benchmark's thousands are dropped, not waited for
		}
	})
	e.svc.SetClock(e.clock.Now)
	e.svc.SetKeyGrace(0)
	for ns, key := range map[string]string{"team-a": "wk-a", "team-b": "wk-b"} {
		e.load(t, ns, key, eventsDS("product", logins14d))
	}
	h := httptest.NewServer(e.svc.Handler())
	t.Cleanup(h.Close)
	e.url = h.URL
	done := make(chan struct{})
	go func() { _ = e.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// load registers a source and loads it in full, as the DataSource controller does.
func (e *env) load(t testing.TB, ns, key string, ds *v1alpha1.DataSource) {
	t.Helper()
	src, err := e.svc.Register(ns, ds, key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := attr.NewMapper(&ds.Spec)
	if err != nil {
		t.Fatal(err)
	}
	b := profile.NewBuilder(ds.Name, 0, m, 0)
	if err := src.Fetch(context.Background(), func(rec connector.Record, _ *connector.RecordError) error {
		mapped, err := m.Map(rec)
		if err != nil {
			return err
		}
		b.Add(mapped)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.profiles.Namespace(ns).Apply(b.Finish())
	e.svc.Loaded(ns, ds.Name)
}

func (e *env) post(t *testing.T, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %q is not JSON", raw)
	}
	return resp.StatusCode, out
}

// get reads a user attribute from the profile store ("" when absent).
func (e *env) get(ns, user, name string) string {
	var out string
	e.profiles.Namespace(ns).Read(nil, func(v *profile.View) {
		u, ok := v.User(user)
		if !ok {
			return
		}
		if name == "account.industry" {
			if a, ok := u.Account(); ok {
				if val, ok := a.Get("industry"); ok {
					out = fmt.Sprint(val)
				}
			}
			return
		}
		if val, ok := u.Get(name); ok {
			out = fmt.Sprint(val)
		}
	})
	return out
}

func (e *env) eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ts(t time.Time) string { return t.Format(time.RFC3339Nano) }

func TestBadInputIsRejectedAndNothingStored(t *testing.T) {
	e := start(t)
	big := strings.Repeat("x", tracking.MaxCallBytes)
	tests := []struct {
		name, path, key, body string
		status                int
		reason                string
	}{
		{"malformed JSON", "/v1/track", "wk-a", `{"messageId":"bad-1","userId":`, 400, tracking.ReasonInvalidJSON},
		{"oversized call", "/v1/track", "wk-a", `{"messageId":"bad-2","userId":"u","event":"e","properties":{"x":"` + big + `"}}`,
			400, tracking.ReasonPayloadTooLarge},
		{"unknown write key", "/v1/track", "nope", `{"messageId":"bad-3","userId":"u","event":"e"}`, 401, tracking.ReasonUnauthorized},
		{"no write key", "/v1/track", "", `{"messageId":"bad-4","userId":"u","event":"e"}`, 401, tracking.ReasonUnauthorized},
		{"missing ids", "/v1/identify", "wk-a", `{"messageId":"bad-5","traits":{}}`, 400, tracking.ReasonMissingID},
		{"future timestamp", "/v1/track", "wk-a",
			`{"messageId":"bad-6","userId":"u","event":"e","timestamp":"` + ts(t0.Add(48*time.Hour)) + `"}`, 400, tracking.ReasonFutureTimestamp},
		{"one bad call spoils the batch", "/v1/batch", "wk-a",
			`{"batch":[{"type":"track","messageId":"bad-7","userId":"u","event":"e"},{"type":"track","messageId":"bad-8","event":"e"}]}`,
			400, tracking.ReasonMissingID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.post(t, tt.path, tt.key, tt.body)
			if status != tt.status || body["reason"] != tt.reason || body["success"] != false || body["message"] == "" {
				t.Errorf("got %d %v, want %d %s", status, body, tt.status, tt.reason)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/track", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	for i := 1; i <= 8; i++ {
		for _, ns := range []string{"team-a", "team-b"} {
			if n, err := e.events.Count(context.Background(), ns, fmt.Sprint("bad-", i)); err != nil || n != 0 {
				t.Errorf("bad-%d stored %d times in %s (%v)", i, n, ns, err)
			}
		}
	}
}

func TestAcceptedEventsUpdateOnlyTheirUser(t *testing.T) {
	e := start(t)
	ns := e.profiles.Namespace("team-a")
	// Two users known first.
	for _, u := range []string{"u1", "u2"} {
		if s, b := e.post(t, "/v1/identify", "wk-a", `{"messageId":"id-`+u+`","userId":"`+u+`","traits":{"plan":"free"}}`); s != 200 {
			t.Fatalf("identify: %d %v", s, b)
		}
	}
	e.eventually(t, "both users", func() bool { return e.get("team-a", "u1", "plan") == "free" && e.get("team-a", "u2", "plan") == "free" })
	gen := ns.Generation()
	batch := fmt.Sprintf(`{"sentAt":%q,"batch":[
		{"type":"track","messageId":"t1","userId":"u1","event":"login","timestamp":%q},
		{"type":"track","messageId":"t2","userId":"u1","event":"login","timestamp":%q},
		{"type":"group","messageId":"g1","userId":"u1","groupId":"acme","traits":{"industry":"retail"}},
		{"type":"identify","messageId":"i1","userId":"u1","traits":{"plan":"pro"}}]}`,
		ts(t0), ts(t0.Add(-time.Hour)), ts(t0.Add(-2*time.Hour)))
	if s, b := e.post(t, "/v1/batch", "wk-a", batch); s != 200 || b["success"] != true {
		t.Fatalf("batch: %d %v", s, b)
	}
	e.eventually(t, "u1's attributes", func() bool {
		return e.get("team-a", "u1", "logins") == "2" && e.get("team-a", "u1", "plan") == "pro" &&
			e.get("team-a", "u1", "account.industry") == "retail"
	})
	var changes profile.Changes
	ns.Read(nil, func(v *profile.View) { changes = v.Changes(gen) })
	if changes.All || !slices.Equal(changes.Users, []string{"u1"}) {
		t.Errorf("changed since the batch: %+v, want only u1", changes)
	}
	// A retry of the whole batch is accepted and changes nothing.
	gen = ns.Generation()
	if s, _ := e.post(t, "/v1/batch", "wk-a", batch); s != 200 {
		t.Fatalf("retry: %d", s)
	}
	for _, id := range []string{"t1", "t2", "g1", "i1"} {
		if n, _ := e.events.Count(context.Background(), "team-a", id); n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if ns.Generation() != gen {
		t.Errorf("a retried batch moved the generation")
	}
	// The other namespace saw none of it.
	if e.get("team-b", "u1", "logins") != "" || e.get("team-b", "u1", "plan") != "" {
		t.Error("team-a's events reached team-b")
	}
	select {
	case got := <-e.notified:
		if got != "team-a/product" {
			t.Errorf("notified %s", got)
		}
	default:
		t.Error("the Persona controller was not told")
	}
}

func TestWindowEdgeChangesTheProfileAtItsInstant(t *testing.T) {
	e := start(t)
	body := fmt.Sprintf(`{"batch":[
		{"type":"track","messageId":"w1","userId":"u1","event":"login","timestamp":%q},
		{"type":"track","messageId":"w2","userId":"u1","event":"login","timestamp":%q}]}`,
		ts(t0.Add(-13*24*time.Hour)), ts(t0.Add(-time.Hour)))
	if s, b := e.post(t, "/v1/batch", "wk-a", body); s != 200 {
		t.Fatalf("%d %v", s, b)
	}
	e.eventually(t, "two logins", func() bool { return e.get("team-a", "u1", "logins") == "2" })
	edge := t0.Add(-13 * 24 * time.Hour).Add(14 * 24 * time.Hour)
	e.eventually(t, "the edge", func() bool { return e.svc.NextChange("team-a").Equal(edge) })
	e.clock.Set(edge.Add(-time.Second))
	e.svc.poke()
	time.Sleep(100 * time.Millisecond)
	if got := e.get("team-a", "u1", "logins"); got != "2" {
		t.Fatalf("before the edge: %s logins", got)
	}
	e.clock.Set(edge.Add(time.Millisecond))
	e.svc.poke()
	e.eventually(t, "the oldest login to age out", func() bool { return e.get("team-a", "u1", "logins") == "1" })
	if next := e.svc.NextChange("team-a"); !next.Equal(t0.Add(-time.Hour).Add(14 * 24 * time.Hour)) {
		t.Errorf("next edge %v", next)
	}
}

func TestRestartLoadsAggregatesFromTheStore(t *testing.T) {
	e := start(t)
	if s, _ := e.post(t, "/v1/track", "wk-a", `{"messageId":"r1","userId":"u9","event":"login"}`); s != 200 {
		t.Fatal(s)
	}
	e.eventually(t, "u9", func() bool { return e.get("team-a", "u9", "logins") == "1" })
	// A new manager: an empty profile store, the same database.
	fresh := &env{events: e.events, profiles: profile.NewStore(), clock: e.clock, notified: make(chan string, 10)}
	fresh.svc = New(e.events, fresh.profiles, nil)
	fresh.svc.SetClock(e.clock.Now)
	fresh.load(t, "team-a", "wk-a", eventsDS("product", logins14d))
	if got := fresh.get("team-a", "u9", "logins"); got != "1" {
		t.Errorf("after a restart u9 has %q logins, want 1", got)
	}
}

func TestEraseRemovesTheProfile(t *testing.T) {
	e := start(t)
	if s, _ := e.post(t, "/v1/track", "wk-a", `{"messageId":"x1","userId":"gone","event":"login"}`); s != 200 {
		t.Fatal(s)
	}
	e.eventually(t, "the user", func() bool { return e.get("team-a", "gone", "logins") == "1" })
	if n, err := e.svc.Erase(context.Background(), "team-a", "gone"); err != nil || n != 1 {
		t.Fatalf("Erase = %d, %v", n, err)
	}
	e.eventually(t, "the profile to go", func() bool {
		var known bool
		e.profiles.Namespace("team-a").Read(nil, func(v *profile.View) { _, known = v.User("gone") })
		return !known
	})
}

func TestWriteKeyBelongsToOneNamespace(t *testing.T) {
	e := start(t)
	if _, err := e.svc.Register("team-b", eventsDS("other"), "wk-a"); err == nil || !strings.Contains(err.Error(), "another namespace") {
		t.Errorf("team-b took team-a's key: %v", err)
	}
	// A gzipped body (some SDKs compress) is read decompressed.
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(`{"messageId":"z1","userId":"u1","event":"login"}`))
	_ = zw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/track", &zipped)
	req.SetBasicAuth("wk-a", "")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gzip: %d", resp.StatusCode)
	}
	if n, _ := e.events.Count(context.Background(), "team-a", "z1"); n != 1 {
		t.Error("the gzipped call was not stored")
	}
	// The body's writeKey works too (Segment's other way to send it).
	if s, b := e.post(t, "/v1/track", "", `{"messageId":"k1","userId":"u1","event":"login","writeKey":"wk-b"}`); s != 200 {
		t.Fatalf("%d %v", s, b)
	}
	if n, _ := e.events.Count(context.Background(), "team-b", "k1"); n != 1 {
		t.Error("the body's write key was not honoured")
	}
	// A new key for team-b's source retires the old one.
	if _, err := e.svc.Register("team-b", eventsDS("product", logins14d), "wk-b2"); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.post(t, "/v1/track", "wk-b", `{"messageId":"k3","userId":"u1","event":"login"}`); s != http.StatusUnauthorized {
		t.Errorf("a replaced key still accepted: %d", s)
	}
	if s, _ := e.post(t, "/v1/track", "wk-b2", `{"messageId":"k4","userId":"u1","event":"login"}`); s != http.StatusOK {
		t.Errorf("the new key refused: %d", s)
	}
	// Just after a start, an unknown key may be one not registered again yet:
	// 503, so the SDK retries instead of dropping the calls.
	e.svc.SetKeyGrace(time.Hour)
	if s, b := e.post(t, "/v1/track", "wk-later", `{"messageId":"k5","userId":"u1","event":"login"}`); s != http.StatusServiceUnavailable {
		t.Errorf("an unknown key while starting: %d %v, want 503", s, b)
	}
	e.svc.SetKeyGrace(0)
	e.svc.Unregister("team-b", "product")
	if s, _ := e.post(t, "/v1/track", "wk-b2", `{"messageId":"k2","userId":"u1","event":"login"}`); s != http.StatusUnauthorized {
		t.Errorf("a forgotten key still accepted: %d", s)
	}
}
