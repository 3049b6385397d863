package playbook

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func spec(steps ...string) Spec {
	s := Spec{Name: "onboard", UID: "uid-1", Once: true, Created: t0.Add(-time.Hour), UsersPerJob: 1}
	for _, n := range steps {
		s.Steps = append(s.Steps, Step{Name: n})
	}
	return s
}

func member(user string, entered time.Time) Member {
	return Member{Persona: "stalled", UserID: user, AccountID: "acc-" + user, EnteredAt: entered}
}

func running(user, step, job string, entered time.Time) v1alpha1.PlaybookRun {
	st := metav1.NewTime(entered)
	return v1alpha1.PlaybookRun{UserID: user, AccountID: "acc-" + user, Persona: "stalled", EnteredAt: metav1.NewTime(entered),
		Step: step, Phase: v1alpha1.RunRunning, Job: job, StartedAt: &st}
}

func open() Limits { return Limits{MaxConcurrent: 100, Budget: 100} }

func launchedUsers(p Plan) []string {
	var out []string
	for _, l := range p.Launch {
		for _, r := range l.Runs {
			out = append(out, r.UserID+"@"+r.Step)
		}
	}
	return out
}

func TestCompute(t *testing.T) {
	entered := t0.Add(-10 * time.Minute)
	old := t0.Add(-2 * time.Hour)
	jobA := JobName("onboard", "uid-1", "a", []string{"u1"})
	cases := []struct {
		name                                         string
		in                                           Input
		launch                                       []string
		phase                                        map[string]v1alpha1.RunPhase
		release                                      []string
		pending, running, succeeded, failed, overdue int64
		newLaunch                                    bool
	}{
		{name: "a new entry launches its first step",
			in:     Input{Spec: spec("a", "b"), Members: []Member{member("u1", entered)}, Limits: open()},
			launch: []string{"u1@a"}, phase: map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunRunning}, running: 1, newLaunch: true},
		{name: "members from before the playbook existed are skipped by default",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", old)}, Limits: open()}},
		{name: "includeExistingMembers runs them too",
			in:     Input{Spec: func() Spec { s := spec("a"); s.IncludeExisting = true; return s }(), Members: []Member{member("u1", old)}, Limits: open()},
			launch: []string{"u1@a"}, running: 1, newLaunch: true},
		{name: "a recorded intent without a Job gets its Job (never created)",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", entered)}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)}},
			launch: []string{"u1@a"}, running: 1},
		{name: "a recorded intent is created even while paused",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", entered)}, Limits: Limits{Paused: true},
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)}},
			launch: []string{"u1@a"}, running: 1},
		{name: "a running Job is left alone",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", entered)}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)},
				Jobs: map[string]Job{jobA: {Name: jobA, Held: true}}},
			running: 1},
		{name: "a succeeded step starts the next one",
			in: Input{Spec: spec("a", "b"), Members: []Member{member("u1", entered)}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)},
				Jobs: map[string]Job{jobA: {Name: jobA, Succeeded: true, Held: true}}},
			launch: []string{"u1@b"}, phase: map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunRunning}, running: 1, newLaunch: true},
		{name: "the last step's success ends the run",
			in: Input{Spec: spec("a"), Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)},
				Jobs: map[string]Job{jobA: {Name: jobA, Succeeded: true, Held: true}}},
			phase: map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunSucceeded}, succeeded: 1},
		{name: "a failed Job fails the run",
			in: Input{Spec: spec("a", "b"), Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)},
				Jobs: map[string]Job{jobA: {Name: jobA, Failed: true, Held: true}}},
			phase: map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunFailed}, failed: 1},
		{name: "a Job deleted before finishing fails the run, and is not released in the same pass",
			in: Input{Spec: spec("a"), Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)},
				Jobs: map[string]Job{jobA: {Name: jobA, Deleting: true, Held: true}}},
			phase: map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunFailed}, failed: 1},
		{name: "a deleting Job whose outcome is recorded is released",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", entered)}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": func() v1alpha1.PlaybookRun {
					r := running("u1", "a", jobA, entered)
					r.Phase = v1alpha1.RunSucceeded
					return r
				}()},
				Jobs: map[string]Job{jobA: {Name: jobA, Succeeded: true, Deleting: true, Held: true}}},
			release: []string{jobA}, succeeded: 1},
		{name: "Once: a user who re-enters gets no second run",
			in: Input{Spec: spec("a"), Members: []Member{member("u1", t0.Add(-time.Minute))}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": func() v1alpha1.PlaybookRun {
					r := running("u1", "a", jobA, entered)
					r.Phase = v1alpha1.RunSucceeded
					return r
				}()}},
			succeeded: 1},
		{name: "EveryEntry: a re-entry gets a new run",
			in: Input{Spec: func() Spec { s := spec("a"); s.Once = false; return s }(), Members: []Member{member("u1", t0.Add(-time.Minute))}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": func() v1alpha1.PlaybookRun {
					r := running("u1", "a", jobA, entered)
					r.Phase = v1alpha1.RunSucceeded
					return r
				}()}},
			launch: []string{"u1@a"}, running: 1, newLaunch: true},
		{name: "EveryEntry: a re-entry within the cooldown waits",
			in: Input{Spec: func() Spec { s := spec("a"); s.Once = false; s.Cooldown = time.Hour; return s }(), Members: []Member{member("u1", t0.Add(-time.Minute))}, Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": func() v1alpha1.PlaybookRun {
					r := running("u1", "a", jobA, entered)
					r.Phase = v1alpha1.RunSucceeded
					return r
				}()}},
			succeeded: 1},
		{name: "maxConcurrentJobs leaves the rest pending, oldest entries first",
			in: Input{Spec: spec("a"), Limits: Limits{MaxConcurrent: 2, Budget: 100},
				Members: []Member{member("u3", entered), member("u1", entered.Add(time.Second)), member("u2", entered.Add(-time.Second))}},
			launch: []string{"u2@a", "u3@a"}, pending: 1, running: 2, newLaunch: true},
		{name: "the launch budget caps Jobs",
			in: Input{Spec: spec("a"), Limits: Limits{MaxConcurrent: 10, Budget: 1},
				Members: []Member{member("u1", entered), member("u2", entered)}},
			launch: []string{"u1@a"}, pending: 1, running: 1, newLaunch: true},
		{name: "paused: nothing new launches",
			in:      Input{Spec: spec("a"), Limits: Limits{Paused: true, MaxConcurrent: 10, Budget: 10}, Members: []Member{member("u1", entered)}},
			pending: 1},
		{name: "usersPerJob batches one step's runs",
			in: Input{Spec: func() Spec { s := spec("a"); s.UsersPerJob = 2; return s }(), Limits: Limits{MaxConcurrent: 10, Budget: 10},
				Members: []Member{member("u1", entered), member("u2", entered), member("u3", entered)}},
			launch: []string{"u1@a", "u2@a", "u3@a"}, running: 3, newLaunch: true},
		{name: "a step past dueAfter is overdue",
			in: Input{Spec: func() Spec { s := spec("a"); s.Steps[0].DueAfter = time.Hour; s.IncludeExisting = true; return s }(), Limits: open(),
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, old)},
				Jobs: map[string]Job{jobA: {Name: jobA, Held: true}}, Members: []Member{member("u1", old)}},
			running: 1, overdue: 1},
		{name: "a user in two watched personas gets one run",
			in:     Input{Spec: spec("a"), Limits: open(), Members: []Member{member("u1", entered), {Persona: "other", UserID: "u1", EnteredAt: entered.Add(time.Second)}}},
			launch: []string{"u1@a"}, running: 1, newLaunch: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = t0
			p := Compute(tc.in)
			if got, want := strings.Join(launchedUsers(p), ","), strings.Join(tc.launch, ","); got != want {
				t.Errorf("launched %q, want %q", got, want)
			}
			for u, ph := range tc.phase {
				if got := p.Changed[u].Phase; got != ph {
					t.Errorf("%s recorded as %q, want %q", u, got, ph)
				}
			}
			if got, want := strings.Join(p.Release, ","), strings.Join(tc.release, ","); got != want {
				t.Errorf("released %q, want %q", got, want)
			}
			c := p.Counts
			if c.Pending != tc.pending || c.Running != tc.running || c.Succeeded != tc.succeeded || c.Failed != tc.failed || c.Overdue != tc.overdue {
				t.Errorf("counts %+v, want pending %d running %d succeeded %d failed %d overdue %d",
					c, tc.pending, tc.running, tc.succeeded, tc.failed, tc.overdue)
			}
			for _, l := range p.Launch {
				if l.New != tc.newLaunch {
					t.Errorf("launch %s New=%v, want %v", l.Job, l.New, tc.newLaunch)
				}
				if l.New {
					for _, r := range l.Runs {
						if p.Changed[r.UserID].Job != l.Job {
							t.Errorf("launch %s of %s is not recorded before creation", l.Job, r.UserID)
						}
					}
				}
			}
		})
	}
}

func TestComputeBatchesAndWake(t *testing.T) {
	s := spec("a")
	s.UsersPerJob = 2
	s.Steps[0].DueAfter = time.Hour
	entered := t0.Add(-10 * time.Minute)
	p := Compute(Input{Spec: s, Now: t0, Limits: open(), Members: []Member{member("u1", entered), member("u2", entered), member("u3", entered)}})
	if len(p.Launch) != 2 || len(p.Launch[0].Runs) != 2 || len(p.Launch[1].Runs) != 1 {
		t.Fatalf("want Jobs of 2 and 1 users, got %+v", p.Launch)
	}
	if !p.Wake.Equal(entered.Add(time.Hour)) {
		t.Errorf("wake %v, want the due time %v", p.Wake, entered.Add(time.Hour))
	}
}

func TestComputeExit(t *testing.T) {
	s := spec("a")
	s.OnExit = true
	entered := t0.Add(-10 * time.Minute)
	p := Compute(Input{Spec: s, Now: t0, Limits: open(), Members: []Member{member("u1", entered)}})
	if len(p.Launch) != 0 || p.Changed["u1"].Phase != v1alpha1.RunArmed {
		t.Fatalf("a member of an Exit playbook must be armed, not run: %+v", p)
	}
	armed := p.Changed
	p = Compute(Input{Spec: s, Now: t0, Limits: open(), Members: []Member{member("u1", entered)}, Runs: armed})
	if len(p.Launch) != 0 || len(p.Changed) != 0 {
		t.Fatalf("a member still inside must not run or be rewritten: %+v", p)
	}
	p = Compute(Input{Spec: s, Now: t0, Limits: open(), Runs: armed})
	if got := strings.Join(launchedUsers(p), ","); got != "u1@a" {
		t.Fatalf("the exit must launch u1@a, got %q", got)
	}
	p = Compute(Input{Spec: s, Now: t0, Limits: Limits{Paused: true}, Runs: armed})
	if len(p.Launch) != 0 || p.Counts.Pending != 1 || len(p.Changed) != 0 {
		t.Fatalf("a paused exit waits, armed: %+v", p)
	}
}

func TestJobName(t *testing.T) {
	a := JobName("onboarding.playbook", "uid", "welcome-email", []string{"u1"})
	if a != JobName("onboarding.playbook", "uid", "welcome-email", []string{"u1"}) {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{
		JobName("onboarding.playbook", "uid2", "welcome-email", []string{"u1"}),
		JobName("onboarding.playbook", "uid", "call", []string{"u1"}),
		JobName("onboarding.playbook", "uid", "welcome-email", []string{"u2"}),
		JobName("onboarding.playbook", "uid", "welcome-email", []string{"u1", "u2"}),
	} {
		if other == a {
			t.Errorf("%s collides", a)
		}
	}
	if !strings.HasPrefix(a, "onboarding-playbook-welcome-email-") {
		t.Errorf("unreadable name %q", a)
	}
}

func FuzzJobName(f *testing.F) {
	f.Add("onboarding", "uid", "step", "user@example.com")
	f.Add(strings.Repeat("x.", 120), "", "-", "")
	f.Fuzz(func(t *testing.T, pb, uid, step, user string) {
		name := JobName(pb, uid, step, []string{user})
		if len(name) > MaxJobNameLength {
			t.Fatalf("%q is %d characters", name, len(name))
		}
		for i, r := range name {
			ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || (r == '-' && i > 0 && i < len(name)-1)
			if !ok {
				t.Fatalf("%q is not a DNS label", name)
			}
		}
	})
}

func TestPlanLedger(t *testing.T) {
	run := func(u string, ph v1alpha1.RunPhase) v1alpha1.PlaybookRun {
		return v1alpha1.PlaybookRun{UserID: u, Phase: ph}
	}
	existing := []LedgerSlice{
		{Name: "s1", Runs: []v1alpha1.PlaybookRun{run("a", v1alpha1.RunRunning), run("b", v1alpha1.RunRunning)}},
		{Name: "s2", Runs: []v1alpha1.PlaybookRun{run("c", v1alpha1.RunRunning)}},
	}
	if p := PlanLedger(existing, nil, 3); p.Writes() != 0 {
		t.Fatalf("no change must write nothing, got %+v", p)
	}
	p := PlanLedger(existing, map[string]v1alpha1.PlaybookRun{"b": run("b", v1alpha1.RunSucceeded), "d": run("d", v1alpha1.RunRunning)}, 3)
	if p.Writes() != 1 || p.Update[0].Name != "s1" || len(p.Update[0].Runs) != 3 {
		t.Fatalf("the change and the new run should share one write to s1: %+v", p)
	}
	p = PlanLedger(existing, map[string]v1alpha1.PlaybookRun{"x": run("x", v1alpha1.RunRunning), "y": run("y", v1alpha1.RunRunning)}, 3)
	if p.Writes() != 1 || len(p.Update) != 1 || p.Update[0].Name != "s2" {
		t.Fatalf("new runs that fit one clean slice should top it up: %+v", p)
	}
	many := map[string]v1alpha1.PlaybookRun{}
	for _, u := range []string{"p", "q", "r", "s", "t", "u", "v"} {
		many[u] = run(u, v1alpha1.RunRunning)
	}
	p = PlanLedger(nil, many, 3)
	if len(p.Create) != 3 || len(p.Create[0]) != 3 || len(p.Create[2]) != 1 {
		t.Fatalf("want new slices of 3, 3 and 1: %+v", p)
	}
	got := Runs([]LedgerSlice{{Name: "b", Runs: []v1alpha1.PlaybookRun{run("a", v1alpha1.RunFailed)}}, {Name: "a", Runs: []v1alpha1.PlaybookRun{run("a", v1alpha1.RunSucceeded)}}})
	if got["a"].Phase != v1alpha1.RunSucceeded {
		t.Fatalf("a duplicate must resolve to the first slice by name, got %+v", got)
	}
}

// TestStates checks what user.playbooks shows for each kind of run: the
// deadline and overdue flag of unfinished steps, finished runs without one,
// nothing for armed or unknown users, and a pending re-entry over the finished
// run it follows.
func TestStates(t *testing.T) {
	entered := t0.Add(-2 * time.Hour) // the first step (due after 1h) is overdue, the second (3h) is not
	s := spec("a", "b")
	s.Steps[0].DueAfter, s.Steps[1].DueAfter = time.Hour, 3*time.Hour
	s.IncludeExisting = true
	jobA := JobName("onboard", "uid-1", "a", []string{"u1"})
	finished := func(u string, ph v1alpha1.RunPhase) v1alpha1.PlaybookRun {
		r := running(u, "b", "", entered)
		r.Phase = ph
		return r
	}
	dueA, dueB := entered.Add(time.Hour), entered.Add(3*time.Hour)
	cases := []struct {
		name string
		in   Input
		want map[string]State
	}{
		{name: "a running step past its dueAfter is overdue",
			in: Input{Spec: s, Limits: open(), Members: []Member{member("u1", entered)},
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)}, Jobs: map[string]Job{jobA: {Name: jobA, Held: true}}},
			want: map[string]State{"u1": {Phase: v1alpha1.RunRunning, Step: "a", DueAt: dueA, Overdue: true}}},
		{name: "its success moves the user to the next step, not yet due",
			in: Input{Spec: s, Limits: open(), Members: []Member{member("u1", entered)},
				Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", jobA, entered)}, Jobs: map[string]Job{jobA: {Name: jobA, Succeeded: true, Held: true}}},
			want: map[string]State{"u1": {Phase: v1alpha1.RunRunning, Step: "b", DueAt: dueB}}},
		{name: "a new entry waiting for a slot is pending, and overdue all the same",
			in:   Input{Spec: s, Limits: Limits{Paused: true}, Members: []Member{member("u1", entered)}},
			want: map[string]State{"u1": {Phase: v1alpha1.RunPending, Step: "a", DueAt: dueA, Overdue: true}}},
		{name: "finished runs have no deadline",
			in: Input{Spec: s, Limits: open(), Runs: map[string]v1alpha1.PlaybookRun{
				"u1": finished("u1", v1alpha1.RunSucceeded), "u2": finished("u2", v1alpha1.RunFailed)}},
			want: map[string]State{"u1": {Phase: v1alpha1.RunSucceeded, Step: "b"}, "u2": {Phase: v1alpha1.RunFailed, Step: "b"}}},
		{name: "a pending re-entry shows instead of the finished run",
			in: Input{Spec: func() Spec { s := s; s.Once = false; return s }(), Limits: Limits{Paused: true},
				Members: []Member{member("u1", t0.Add(-time.Minute))}, Runs: map[string]v1alpha1.PlaybookRun{"u1": finished("u1", v1alpha1.RunSucceeded)}},
			want: map[string]State{"u1": {Phase: v1alpha1.RunPending, Step: "a", DueAt: t0.Add(-time.Minute + time.Hour)}}},
		{name: "an armed Exit record is not a run yet",
			in:   Input{Spec: func() Spec { s := s; s.OnExit = true; return s }(), Limits: open(), Members: []Member{member("u1", entered)}},
			want: map[string]State{}},
		{name: "no runs, no states", in: Input{Spec: s, Limits: open()}, want: map[string]State{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = t0
			if got := Compute(tc.in).States; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("states\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLedgerStates(t *testing.T) {
	entered := t0.Add(-2 * time.Hour)
	s := spec("a", "b")
	s.Steps[0].DueAfter, s.Steps[1].DueAfter = time.Hour, 3*time.Hour
	armed := v1alpha1.PlaybookRun{UserID: "u3", Persona: "stalled", EnteredAt: metav1.NewTime(entered), Phase: v1alpha1.RunArmed}
	states, wake := LedgerStates(s, map[string]v1alpha1.PlaybookRun{
		"u1": running("u1", "a", "j1", entered), "u2": running("u2", "b", "j2", entered), "u3": armed,
	}, t0)
	want := map[string]State{
		"u1": {Phase: v1alpha1.RunRunning, Step: "a", DueAt: entered.Add(time.Hour), Overdue: true},
		"u2": {Phase: v1alpha1.RunRunning, Step: "b", DueAt: entered.Add(3 * time.Hour)},
	}
	if !reflect.DeepEqual(states, want) {
		t.Errorf("states\n got %+v\nwant %+v", states, want)
	}
	if !wake.Equal(entered.Add(3 * time.Hour)) {
		t.Errorf("wake = %v, want u2's due time", wake)
	}
}

// TestPlanLedgerLeavesSlicesAlone: the slices a plan reads are the cache's:
// a plan never writes into their arrays, even where they have room to spare.
func TestPlanLedgerLeavesSlicesAlone(t *testing.T) {
	runs := make([]v1alpha1.PlaybookRun, 2, 10)
	runs[0], runs[1] = running("b", "a", "j", t0), running("d", "a", "j", t0)
	existing := []LedgerSlice{{Name: "s1", Runs: runs}}
	before := append([]v1alpha1.PlaybookRun(nil), runs[:cap(runs)]...)
	changed := map[string]v1alpha1.PlaybookRun{"a": running("a", "a", "k", t0), "c": running("c", "a", "k", t0)}
	p := PlanLedger(existing, changed, 10)
	if len(p.Update) != 1 || len(p.Update[0].Runs) != 4 {
		t.Fatalf("plan %+v, want s1 updated with 4 runs", p)
	}
	if !reflect.DeepEqual(runs[:cap(runs)], before) {
		t.Fatal("the plan wrote into the existing slice's array")
	}
}

func TestLedgerName(t *testing.T) {
	taken := map[string]bool{"onboard-runs-1": true, "onboard-runs-2": true, "onboard-x7k2p": true}
	if got := LedgerName("onboard", func(n string) bool { return taken[n] }); got != "onboard-runs-3" {
		t.Fatalf("LedgerName = %q, want the first free ordinal onboard-runs-3", got)
	}
	if got := LedgerName("onboard", func(string) bool { return false }); got != "onboard-runs-1" {
		t.Fatalf("LedgerName = %q, want onboard-runs-1", got)
	}
	long := strings.Repeat("p", 63)
	if got := LedgerName(long, func(string) bool { return false }); len(got) > 253 {
		t.Fatalf("name of %d characters", len(got))
	}
}
