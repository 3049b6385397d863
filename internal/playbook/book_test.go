package playbook

import (
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// bookWorld is the cluster a playbook's passes read: membership slices of two
// personas that the Persona controller edits (and, rarely, a person by hand:
// unsorted, a user twice), the ledger the passes write, and Jobs that finish
// and go.
type bookWorld struct {
	rng     *rand.Rand
	spec    Spec
	now     time.Time
	version int
	members map[string]MemberSlice // by persona/name
	ledger  map[string]RunSlice
	jobs    map[string]Job
}

func newBookWorld(seed int64) *bookWorld {
	rng := rand.New(rand.NewSource(seed))
	s := Spec{Name: "pb", UID: "uid", OnExit: rng.Intn(3) == 0, Once: rng.Intn(2) == 0, IncludeExisting: rng.Intn(3) == 0,
		Created: t0, UsersPerJob: 1 + rng.Intn(3), Steps: []Step{{Name: "a"}, {Name: "b"}}}
	if rng.Intn(2) == 0 {
		s.Cooldown = time.Duration(rng.Intn(120)) * time.Second
	}
	if rng.Intn(2) == 0 {
		s.Steps[0].DueAfter = time.Duration(10+rng.Intn(100)) * time.Second
	}
	return &bookWorld{rng: rng, spec: s, now: t0.Add(time.Second), members: map[string]MemberSlice{},
		ledger: map[string]RunSlice{}, jobs: map[string]Job{}}
}

func (w *bookWorld) bump() string { w.version++; return fmt.Sprint(w.version) }

// move makes a few membership changes: entries (some from before the
// playbook existed), exits, re-entries, and hand edits.
func (w *bookWorld) move() {
	for range 1 + w.rng.Intn(3) {
		persona := fmt.Sprintf("p%d", w.rng.Intn(2))
		key := fmt.Sprintf("%s/s%d", persona, w.rng.Intn(3))
		s, ok := w.members[key]
		if !ok {
			s = MemberSlice{Persona: persona, Name: key[len(persona)+1:]}
		}
		ms := append([]v1alpha1.MembershipEntry(nil), s.Members...)
		u := fmt.Sprintf("u%02d", w.rng.Intn(25))
		at := w.now
		if w.rng.Intn(4) == 0 {
			at = t0.Add(-time.Duration(1+w.rng.Intn(100)) * time.Second)
		}
		e := v1alpha1.MembershipEntry{UserID: u, AccountID: "a" + u, EnteredAt: metav1.NewTime(at)}
		i := sort.Search(len(ms), func(i int) bool { return ms[i].UserID >= u })
		switch {
		case w.rng.Intn(25) == 0:
			ms = append(ms, e) // by hand: unsorted, maybe twice
		case i < len(ms) && ms[i].UserID == u && w.rng.Intn(2) == 0:
			ms = append(ms[:i], ms[i+1:]...)
		case i < len(ms) && ms[i].UserID == u:
			ms[i] = e // left and came back
		default:
			ms = append(ms[:i], append([]v1alpha1.MembershipEntry{e}, ms[i:]...)...)
		}
		if (len(ms) == 0 && w.rng.Intn(2) == 0) || w.rng.Intn(40) == 0 {
			delete(w.members, key)
			continue
		}
		s.Members, s.Version = ms, w.bump()
		w.members[key] = s
	}
}

// outside moves time and the Jobs: they finish, fail and are deleted; once
// in a while someone edits the ledger by hand.
func (w *bookWorld) outside() {
	w.now = w.now.Add(time.Duration(1+w.rng.Intn(40)) * time.Second)
	for n, j := range w.jobs {
		switch {
		case !j.Succeeded && !j.Failed && w.rng.Intn(3) == 0:
			j.Succeeded = w.rng.Intn(8) > 0
			j.Failed = !j.Succeeded
		case (j.Succeeded || j.Failed) && w.rng.Intn(3) == 0:
			j.Deleting = true
		}
		w.jobs[n] = j
	}
	if len(w.ledger) > 0 && w.rng.Intn(10) == 0 {
		names := sortedKeys(w.ledger)
		s := w.ledger[names[w.rng.Intn(len(names))]]
		switch {
		case w.rng.Intn(4) == 0:
			delete(w.ledger, s.Name) // a slice deleted by hand
		case len(s.Runs) > 0:
			runs := append([]v1alpha1.PlaybookRun(nil), s.Runs...)
			if w.rng.Intn(2) == 0 {
				runs = runs[1:]
			} else {
				runs[0].Phase = v1alpha1.RunFailed
			}
			s.Runs, s.Version = runs, w.bump()
			w.ledger[s.Name] = s
		}
	}
}

// apply writes a plan as the controller does: ledger slices (placed from the
// book's search, which must place them as a walk over every run does), then
// Jobs, then releases.
func (w *bookWorld) apply(t *testing.T, b *Book, p Plan) {
	var existing []LedgerSlice
	for _, s := range w.ledger {
		existing = append(existing, LedgerSlice{Name: s.Name, Runs: s.Runs})
	}
	lp := PlanLedgerAt(existing, p.Changed, 4, b.Holders(p.Changed))
	if walked := PlanLedger(existing, p.Changed, 4); !reflect.DeepEqual(lp, walked) {
		t.Fatalf("ledger plans differ\n searched %+v\n walked   %+v", lp, walked)
	}
	for _, s := range lp.Update {
		w.ledger[s.Name] = RunSlice{Name: s.Name, Version: w.bump(), Runs: s.Runs}
	}
	for _, runs := range lp.Create {
		name := LedgerName("pb", func(n string) bool { _, ok := w.ledger[n]; return ok })
		w.ledger[name] = RunSlice{Name: name, Version: w.bump(), Runs: runs}
	}
	for _, l := range p.Launch {
		if _, ok := w.jobs[l.Job]; !ok {
			w.jobs[l.Job] = Job{Name: l.Job, Held: true}
		}
	}
	for _, n := range p.Release {
		delete(w.jobs, n)
	}
}

func (w *bookWorld) slices() ([]MemberSlice, []RunSlice) {
	var ms []MemberSlice
	for _, k := range sortedKeys(w.members) {
		ms = append(ms, w.members[k])
	}
	var rs []RunSlice
	for _, k := range sortedKeys(w.ledger) {
		rs = append(rs, w.ledger[k])
	}
	// Listed in any order, as a cache does.
	w.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	w.rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	return ms, rs
}

// flat is what Compute reads: every member and the ledger as Runs reads it.
func flat(ms []MemberSlice, rs []RunSlice) ([]Member, map[string]v1alpha1.PlaybookRun) {
	var members []Member
	for _, s := range ms {
		for _, m := range s.Members {
			members = append(members, memberOf(s.Persona, m))
		}
	}
	var ls []LedgerSlice
	for _, s := range rs {
		ls = append(ls, LedgerSlice{Name: s.Name, Runs: s.Runs})
	}
	return members, Runs(ls)
}

func samePlan(t *testing.T, what string, got, want Plan) {
	t.Helper()
	g, wn := got, want
	g.States, wn.States = nil, nil
	if !reflect.DeepEqual(g, wn) {
		t.Fatalf("%s: plans differ\n got  %+v\n want %+v", what, g, wn)
	}
	if !reflect.DeepEqual(got.States, want.States) {
		t.Fatalf("%s: States differ\n got  %v\n want %v", what, got.States, want.States)
	}
}

// TestBookIncrementalEqualsFull: whatever the sequence of membership changes,
// Job outcomes and ledger edits, a book kept up to date by Sync plans every
// pass exactly as a full pass over the same slices (NewBook) and as Compute
// over every member and run: the same launches, ledger writes, releases,
// counts, States and wake time.
func TestBookIncrementalEqualsFull(t *testing.T) {
	defer func(c int) { searchCost = c }(searchCost)
	searchCost = 0 // search every change, however small the world
	launched, searched := 0, 0
	for seed := int64(0); seed < 60; seed++ {
		l, s := bookRun(t, seed)
		launched, searched = launched+l, searched+s
	}
	if launched < 300 || searched < 3000 {
		t.Fatalf("%d launches, %d users searched: the runs tested little", launched, searched)
	}
}

func FuzzBookIncrementalEqualsFull(f *testing.F) {
	defer func(c int) { searchCost = c }(searchCost)
	searchCost = 0
	f.Add(int64(7))
	f.Fuzz(func(t *testing.T, seed int64) { bookRun(t, seed) })
}

func bookRun(t *testing.T, seed int64) (launched, searched int) {
	w := newBookWorld(seed)
	ms, rs := w.slices()
	book := NewBook(w.spec, ms, rs)
	for i := range 120 {
		if i < 80 {
			w.move()
		}
		w.outside()
		ms, rs := w.slices()
		if !book.Sync(ms, rs) {
			t.Fatalf("seed %d: Sync fell back to a full pass", seed)
		}
		searched += book.Searched()
		limits := Limits{MaxConcurrent: 1 + w.rng.Intn(6), Budget: w.rng.Intn(6), Paused: w.rng.Intn(10) == 0}
		got := book.Plan(w.jobs, limits, w.now)
		want := NewBook(w.spec, ms, rs).Plan(w.jobs, limits, w.now)
		what := fmt.Sprintf("seed %d pass %d", seed, i)
		samePlan(t, what, got, want)
		members, runs := flat(ms, rs)
		in := Input{Spec: w.spec, Members: members, Runs: runs, Jobs: w.jobs, Limits: limits, Now: w.now}
		samePlan(t, what+" (Compute)", got, Compute(in))
		// And as the decision over every user, quiet or not.
		in.Members = slices.Collect(maps.Values(dedupe(members)))
		samePlan(t, what+" (every user)", got, decide(in))
		launched += len(got.Launch)
		w.apply(t, book, got)
	}
	return launched, searched
}

// TestBookSyncTouchesOnlyChanges: a pass after one entry classifies that one
// user again, and the live users are only those a pass acts on.
func TestBookSyncTouchesOnlyChanges(t *testing.T) {
	s := spec("a")
	s.Created = t0.Add(-time.Hour)
	var ms []MemberSlice
	var ledger []RunSlice
	for i := range 20 {
		sl := MemberSlice{Persona: "stalled", Name: fmt.Sprintf("s%02d", i), Version: "1"}
		rl := RunSlice{Name: fmt.Sprintf("r%02d", i), Version: "1"}
		for j := range 50 {
			u := fmt.Sprintf("u%02d-%02d", i, j)
			at := metav1.NewTime(t0.Add(-time.Duration(i*50+j) * time.Second))
			sl.Members = append(sl.Members, v1alpha1.MembershipEntry{UserID: u, EnteredAt: at})
			r := running(u, "a", "job", at.Time)
			r.Phase, r.AccountID = v1alpha1.RunSucceeded, ""
			rl.Runs = append(rl.Runs, r)
		}
		ms, ledger = append(ms, sl), append(ledger, rl)
	}
	b := NewBook(s, ms, ledger)
	if b.Live() != 0 {
		t.Fatalf("%d live users, want 0: every run finished", b.Live())
	}
	p := b.Plan(nil, open(), t0)
	if len(p.Launch) != 0 || p.Counts.Succeeded != 1000 || len(p.States) != 1000 {
		t.Fatalf("full: %d launches, %+v, %d states", len(p.Launch), p.Counts, len(p.States))
	}
	b.MarkPublished()
	changed := ms[3]
	changed.Members = append(append([]v1alpha1.MembershipEntry(nil), changed.Members...),
		v1alpha1.MembershipEntry{UserID: "u99", EnteredAt: metav1.NewTime(t0)})
	changed.Version = "2"
	ms[3] = changed
	if !b.Sync(ms, ledger) {
		t.Fatal("one entry fell back to a full pass")
	}
	if b.Searched() != 1 || b.Live() != 1 {
		t.Fatalf("searched %d, live %d; want 1 and 1", b.Searched(), b.Live())
	}
	p = b.Plan(nil, open(), t0)
	if got := launchedUsers(p); !reflect.DeepEqual(got, []string{"u99@a"}) || p.Counts.Succeeded != 1000 || !b.Unpublished() {
		t.Fatalf("launched %v, %+v, unpublished %v", got, p.Counts, b.Unpublished())
	}
	// Nothing changed: nothing searched, the states stay published.
	b.MarkPublished()
	if !b.Sync(ms, ledger) || b.Searched() != 0 {
		t.Fatalf("a sync without changes searched %d users", b.Searched())
	}
	b.Plan(nil, open(), t0)
	if b.Unpublished() {
		t.Fatal("a pass that changed no State asks to publish")
	}
}

// TestBookSyncFallsBack: when most users changed, searching each would cost
// more than a full pass, and Sync says so.
func TestBookSyncFallsBack(t *testing.T) {
	ms := []MemberSlice{{Persona: "p", Name: "s", Version: "1"}}
	b := NewBook(spec("a"), ms, nil)
	for i := range 50 {
		ms[0].Members = append(ms[0].Members, v1alpha1.MembershipEntry{UserID: fmt.Sprintf("u%02d", i), EnteredAt: metav1.NewTime(t0)})
	}
	ms[0].Version = "2"
	if b.Sync(ms, nil) {
		t.Fatal("50 new users of 50 were searched one by one")
	}
}
