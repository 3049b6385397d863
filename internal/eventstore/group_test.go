package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/usersuccess/persona-operator/internal/tracking"
)

func pendingWrite(ns string, calls ...tracking.Call) *write {
	return &write{namespace: ns, calls: calls, receivedAt: t0, done: make(chan writeResult, 1)}
}

// A group is one transaction, but what each request stored is its own: a
// messageId twice in the group (a retry racing its original) is stored once,
// for the earlier request, and namespaces stay apart.
func TestGroupCommitAnswersEachRequest(t *testing.T) {
	s, _ := open(t)
	a := pendingWrite("ns-a", track("m1", "ada", "login", t0, `{}`), track("m2", "bob", "login", t0, `{}`))
	retry := pendingWrite("ns-a", track("m2", "bob", "login", t0, `{}`), track("m3", "cy", "login", t0, `{}`))
	other := pendingWrite("ns-b", track("m1", "ada", "login", t0, `{}`))
	s.commit([]*write{a, retry, other})
	for _, tt := range []struct {
		name  string
		w     *write
		want  int
		users []string
	}{{"first", a, 2, []string{"ada", "bob"}}, {"retry", retry, 1, []string{"cy"}}, {"other namespace", other, 1, []string{"ada"}}} {
		r := <-tt.w.done
		if r.err != nil || r.written.Inserted != tt.want || !slices.Equal(r.written.Users, tt.users) {
			t.Errorf("%s: %+v, %v; want %d inserted for %v", tt.name, r.written, r.err, tt.want, tt.users)
		}
	}
	for ns, want := range map[string]int{"ns-a": 3, "ns-b": 1} {
		for _, id := range []string{"m1"} {
			if n, err := s.Count(context.Background(), ns, id); err != nil || n != 1 {
				t.Errorf("%s/%s stored %d times (%v)", ns, id, n, err)
			}
		}
		p := profiles(t, s, ns, nil, nil, t0)
		if len(p) != want {
			t.Errorf("%s: %d users, want %d", ns, len(p), want)
		}
	}
}

// One request the database rejects fails alone: the others of its group are
// committed after all.
func TestGroupCommitIsolatesAFailingRequest(t *testing.T) {
	s, _ := open(t)
	good := pendingWrite("ns", track("g1", "ada", "login", t0, `{}`))
	bad := pendingWrite("ns", track("b1", "bob", "login", t0, `{}`), tracking.Call{Type: tracking.Track, MessageID: "b2",
		UserID: "bob", Event: "login", Properties: json.RawMessage(`{"not json`), Timestamp: t0})
	later := pendingWrite("ns", track("g2", "cy", "login", t0, `{}`))
	s.commit([]*write{good, bad, later})
	if r := <-good.done; r.err != nil || r.written.Inserted != 1 {
		t.Errorf("good: %+v, %v", r.written, r.err)
	}
	if r := <-bad.done; r.err == nil {
		t.Errorf("the bad request was stored: %+v", r.written)
	}
	if r := <-later.done; r.err != nil || r.written.Inserted != 1 {
		t.Errorf("later: %+v, %v", r.written, r.err)
	}
	if n, _ := s.Count(context.Background(), "ns", "b1"); n != 0 {
		t.Error("part of the bad request is stored")
	}
}

// Concurrent Writes (grouped however they arrive) store every call once.
func TestConcurrentWritesStoreEveryCallOnce(t *testing.T) {
	s, _ := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for r := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := make([]tracking.Call, 25)
			for i := range calls {
				// Every request repeats the previous one's ids: each id is
				// sent twice, concurrently.
				calls[i] = track(fmt.Sprintf("m%d", (r/2)*25+i), fmt.Sprint("u", i), "login", t0, `{}`)
			}
			_, err := s.Write(context.Background(), "ns", calls, t0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		if n, err := s.Count(context.Background(), "ns", fmt.Sprint("m", i)); err != nil || n != 1 {
			t.Fatalf("m%d stored %d times (%v)", i, n, err)
		}
	}
}
