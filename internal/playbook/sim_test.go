package playbook

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// world simulates the cluster the planner acts on: a durable ledger, Jobs with
// our finalizer, a Job controller that finishes them, a TTL controller that
// deletes finished ones, a manager that crashes at any point of a pass and an
// informer cache that lags. It checks the exactly-once promise.
type world struct {
	t        *testing.T
	rng      *rand.Rand
	spec     Spec
	now      time.Time
	members  map[string]Member
	ledger   map[string]v1alpha1.PlaybookRun
	jobs     map[string]*Job
	launches map[string]int // (user, entry, step) → Jobs created for it
}

func newWorld(t *testing.T, seed int64, once bool, perJob int) *world {
	s := Spec{Name: "pb", UID: "uid", Once: once, Created: t0, UsersPerJob: perJob,
		Steps: []Step{{Name: "first"}, {Name: "second"}}}
	return &world{t: t, rng: rand.New(rand.NewSource(seed)), spec: s, now: t0.Add(time.Second),
		members: map[string]Member{}, ledger: map[string]v1alpha1.PlaybookRun{}, jobs: map[string]*Job{}, launches: map[string]int{}}
}

// pass runs one reconcile; crash > 0 stops it after that many writes.
func (w *world) pass(crash int, lag bool) {
	var members []Member
	for _, m := range w.members {
		members = append(members, m)
	}
	jobs := map[string]Job{}
	for n, j := range w.jobs {
		if !lag || w.rng.Intn(3) > 0 {
			jobs[n] = *j
		}
	}
	runs := map[string]v1alpha1.PlaybookRun{}
	for u, r := range w.ledger {
		runs[u] = r
	}
	p := Compute(Input{Spec: w.spec, Members: members, Runs: runs, Jobs: jobs, Now: w.now,
		Limits: Limits{MaxConcurrent: 1 + w.rng.Intn(8), Budget: 1 + w.rng.Intn(8)}})
	writes := 0
	step := func() bool { writes++; return crash > 0 && writes > crash }
	// Ledger slices are written one by one: a crash can land between them.
	for _, u := range sortedKeys(p.Changed) {
		if w.rng.Intn(4) == 0 && step() {
			return
		}
		w.ledger[u] = p.Changed[u]
	}
	for _, l := range p.Launch {
		if step() {
			return
		}
		if _, exists := w.jobs[l.Job]; exists {
			continue // AlreadyExists
		}
		w.jobs[l.Job] = &Job{Name: l.Job, Held: true}
		for _, r := range l.Runs {
			k := fmt.Sprintf("%s|%s|%s", EntryKey(w.spec.Once, r.UserID, r.Persona, r.EnteredAt.Time), r.Step, "")
			w.launches[k]++
			if w.launches[k] > 1 {
				w.t.Fatalf("second Job for %s (job %s)", k, l.Job)
			}
		}
	}
	for _, n := range p.Release {
		if step() {
			return
		}
		if j := w.jobs[n]; j != nil && j.Deleting {
			delete(w.jobs, n) // finalizer gone: the Job disappears
		}
	}
}

// churn moves time and the outside world: users enter and leave, Jobs finish,
// finished Jobs are deleted by their TTL.
func (w *world) churn(users int, moveMembers bool) {
	w.now = w.now.Add(time.Duration(1+w.rng.Intn(30)) * time.Second)
	if moveMembers {
		for i := 0; i < 3; i++ {
			u := fmt.Sprintf("u%02d", w.rng.Intn(users))
			if _, in := w.members[u]; in && w.rng.Intn(3) == 0 {
				delete(w.members, u)
			} else if !in {
				w.members[u] = Member{Persona: "p", UserID: u, EnteredAt: w.now}
			}
		}
	}
	for _, j := range w.jobs {
		switch {
		case !j.Succeeded && !j.Failed && w.rng.Intn(3) == 0:
			if w.rng.Intn(10) == 0 {
				j.Failed = true
			} else {
				j.Succeeded = true
			}
		case (j.Succeeded || j.Failed) && w.rng.Intn(4) == 0:
			j.Deleting = true // ttlSecondsAfterFinished
		}
	}
}

func simulate(t *testing.T, seed int64, once bool, perJob int) {
	w := newWorld(t, seed, once, perJob)
	const users = 30
	for i := 0; i < 200; i++ {
		w.churn(users, true)
		crash := 0
		if w.rng.Intn(3) == 0 {
			crash = 1 + w.rng.Intn(4)
		}
		w.pass(crash, w.rng.Intn(4) == 0)
	}
	// Settle: no crashes, no membership changes, Jobs finish.
	for i := 0; i < 150; i++ {
		w.churn(users, false)
		w.pass(0, false)
	}
	for u, m := range w.members {
		r, ok := w.ledger[u]
		if !ok {
			t.Fatalf("seed %d: member %s never got a run", seed, u)
		}
		if r.Phase != v1alpha1.RunSucceeded && r.Phase != v1alpha1.RunFailed {
			t.Fatalf("seed %d: %s's run did not finish: %+v", seed, u, r)
		}
		if !once && !r.EnteredAt.Time.Equal(m.EnteredAt) {
			t.Fatalf("seed %d: %s's current entry got no run", seed, u)
		}
		k := fmt.Sprintf("%s|first|", EntryKey(once, u, m.Persona, r.EnteredAt.Time))
		if w.launches[k] != 1 {
			t.Fatalf("seed %d: %s has %d first-step Jobs", seed, k, w.launches[k])
		}
	}
	if len(w.launches) == 0 {
		t.Fatalf("seed %d: nothing launched", seed)
	}
	for n, j := range w.jobs {
		if j.Deleting {
			t.Fatalf("seed %d: Job %s is stuck deleting", seed, n)
		}
	}
}

func TestExactlyOnceSimulation(t *testing.T) {
	for seed := int64(0); seed < 40; seed++ {
		simulate(t, seed, true, 1)
		simulate(t, seed, false, 1)
		simulate(t, seed, true, 3)
	}
}

func FuzzExactlyOnce(f *testing.F) {
	f.Add(int64(1), true, 1)
	f.Add(int64(2), false, 4)
	f.Fuzz(func(t *testing.T, seed int64, once bool, perJob int) {
		simulate(t, seed, once, 1+abs(perJob)%5)
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
