package playbook

import (
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Step is what the planner needs of a playbook step.
type Step struct {
	Name     string
	DueAfter time.Duration // 0: no deadline
}

// Spec is what the planner needs of a playbook.
type Spec struct {
	Name, UID string
	Steps     []Step
	// OnExit runs the playbook when users leave instead of when they enter.
	OnExit bool
	// Once: one run per user ever; otherwise one per entry, Cooldown apart.
	Once     bool
	Cooldown time.Duration
	// IncludeExisting also runs for entries older than Created.
	IncludeExisting bool
	Created         time.Time
	UsersPerJob     int
}

// Member is a current member of a persona the playbook watches.
type Member struct {
	Persona, UserID, AccountID string
	EnteredAt                  time.Time
}

// Job is what the planner needs of an existing Job of the playbook.
type Job struct {
	Name      string
	Succeeded bool
	Failed    bool
	// Deleting: the Job has a deletion timestamp (TTL or a user deleted it).
	Deleting bool
	// Held: the Job still carries our finalizer.
	Held bool
}

// Limits are the guardrails for this reconcile.
type Limits struct {
	// Paused: no new launches (suspended, or the persona's data is stale).
	// Outcomes are still recorded and recorded intents still created.
	Paused bool
	// MaxConcurrent is the most Jobs running at once.
	MaxConcurrent int
	// Budget is how many Jobs the launch rate limit allows now.
	Budget int
}

// Input is everything one planning pass reads.
type Input struct {
	Spec Spec
	// Members are the personas' members; a user in several personas counts
	// once (Compute keeps the earliest entry, as a Book does).
	Members []Member
	// Runs is the ledger as durably recorded, one run per user.
	Runs   map[string]v1alpha1.PlaybookRun
	Jobs   map[string]Job
	Limits Limits
	Now    time.Time
}

// Launch is one Job to create for one step and one or more runs.
type Launch struct {
	Job  string
	Step int
	Runs []v1alpha1.PlaybookRun
	// New: decided in this pass (recorded by this pass's ledger write, which
	// must land before the Job is created). Otherwise the run was recorded
	// earlier and its Job is missing: never created, because a Job we created
	// cannot disappear before its outcome is recorded (finalizer).
	New bool
}

// Counts summarise runs for status and metrics.
type Counts struct {
	Pending, Running, Succeeded, Failed, Overdue int64
	// RunningJobs is the number of distinct Jobs of running runs.
	RunningJobs int
}

// Overdue is a run whose current step passed its dueAfter without succeeding.
type Overdue struct {
	UserID, Step string
	Since        time.Time
}

// State is where a user's run stands after a pass: what user.playbooks shows.
type State struct {
	Phase v1alpha1.RunPhase // Pending, Running, Succeeded or Failed; never Armed
	Step  string
	// DueAt is when the current step is (or was) due, for a Pending or Running
	// run whose step has a dueAfter; zero otherwise.
	DueAt   time.Time
	Overdue bool
}

// Plan is the outcome of one planning pass.
type Plan struct {
	// Changed are ledger records to write (new or modified), by user id.
	Changed map[string]v1alpha1.PlaybookRun
	// Launch are Jobs to create, after Changed is written.
	Launch []Launch
	// Release are Jobs being deleted whose outcome is durably recorded: their
	// finalizer can go.
	Release []string
	Counts  Counts
	Overdue []Overdue
	// States is, per user, the run that user.playbooks shows: the pending
	// (re-)entry if there is one, else the user's recorded run. Users whose only
	// record is Armed (an Exit playbook waiting for the exit) have none.
	// From Book.Plan it is the book's own map: read only.
	States map[string]State
	// Wake is the earliest future time something changes by time alone (a step
	// becomes overdue, a cooldown ends); zero if none.
	Wake time.Time
}

type planner struct {
	in   Input
	plan Plan
	runs map[string]v1alpha1.PlaybookRun // ledger after this pass
}

// Compute plans one pass over every member and run: a Book built from scratch
// (which sets the quiet users aside) and its plan. It is deterministic: the
// same input gives the same plan, which is what makes a repeated or
// concurrent pass harmless.
func Compute(in Input) Plan {
	b := &Book{spec: in.Spec}
	b.reset(dedupe(in.Members), in.Runs)
	return b.Plan(in.Jobs, in.Limits, in.Now)
}

// decide is the one planning decision, over the users in.Members and in.Runs
// hold: every user, or (Book.Plan) only the live ones, which gives the same
// launches, ledger writes and wake time, since a pass does nothing for a quiet
// user but count its finished run (see quiet).
func decide(in Input) Plan {
	p := &planner{in: in, runs: make(map[string]v1alpha1.PlaybookRun, len(in.Runs))}
	p.plan.Changed = map[string]v1alpha1.PlaybookRun{}
	p.plan.States = make(map[string]State, len(in.Runs))
	for u, r := range in.Runs {
		p.runs[u] = r
	}
	p.observeJobs()
	p.release()
	p.launch(p.candidates())
	p.count()
	return p.plan
}

func (p *planner) set(r v1alpha1.PlaybookRun) {
	p.runs[r.UserID] = r
	p.plan.Changed[r.UserID] = r
}

// observeJobs moves running runs forward from their Jobs' outcomes, and
// re-creates the Jobs of recorded intents that never got one.
func (p *planner) observeJobs() {
	missing := map[string]*Launch{}
	for _, u := range usersIn(p.in.Runs, v1alpha1.RunRunning) {
		r := p.in.Runs[u]
		j, ok := p.in.Jobs[r.Job]
		switch {
		case !ok:
			l := missing[r.Job]
			if l == nil {
				l = &Launch{Job: r.Job, Step: p.stepIndex(r.Step)}
				missing[r.Job] = l
			}
			l.Runs = append(l.Runs, r)
		case j.Succeeded:
			p.set(p.advance(r))
		case j.Failed:
			p.set(p.finish(r, v1alpha1.RunFailed, "JobFailed"))
		case j.Deleting:
			p.set(p.finish(r, v1alpha1.RunFailed, "JobDeleted"))
		}
	}
	for _, name := range sortedKeys(missing) {
		if l := missing[name]; l.Step >= 0 {
			p.plan.Launch = append(p.plan.Launch, *l)
		} else {
			// The step was removed from the spec after the intent was recorded.
			for _, r := range l.Runs {
				p.set(p.finish(r, v1alpha1.RunFailed, "StepRemoved"))
			}
		}
	}
}

func (p *planner) advance(r v1alpha1.PlaybookRun) v1alpha1.PlaybookRun {
	i := p.stepIndex(r.Step)
	if i < 0 || i+1 >= len(p.in.Spec.Steps) {
		return p.finish(r, v1alpha1.RunSucceeded, "")
	}
	r.Step, r.Phase, r.Job = p.in.Spec.Steps[i+1].Name, v1alpha1.RunPending, ""
	return r
}

func (p *planner) finish(r v1alpha1.PlaybookRun, phase v1alpha1.RunPhase, reason string) v1alpha1.PlaybookRun {
	now := metav1.NewTime(p.in.Now)
	r.Phase, r.Reason, r.FinishedAt = phase, reason, &now
	return r
}

// release lets go of Jobs being deleted once no durably recorded run still
// waits for their outcome.
func (p *planner) release() {
	waiting := map[string]bool{}
	for _, r := range p.in.Runs {
		if r.Phase == v1alpha1.RunRunning {
			waiting[r.Job] = true
		}
	}
	for _, name := range sortedKeys(p.in.Jobs) {
		if j := p.in.Jobs[name]; j.Deleting && j.Held && !waiting[name] {
			p.plan.Release = append(p.plan.Release, name)
		}
	}
}

// candidate is a run that may start (or continue with its next step).
type candidate struct {
	run  v1alpha1.PlaybookRun
	step int
}

// candidates lists runs waiting for a launch slot: next steps of runs in
// progress first (finish what was started), then new entries (or exits) in
// order of entry.
func (p *planner) candidates() []candidate {
	var next, fresh []candidate
	for _, u := range usersIn(p.runs, v1alpha1.RunPending) {
		r := p.runs[u]
		if i := p.stepIndex(r.Step); i >= 0 {
			next = append(next, candidate{run: r, step: i})
		} else {
			p.set(p.finish(r, v1alpha1.RunFailed, "StepRemoved"))
		}
	}
	for _, m := range p.triggers() {
		if r, ok := p.runs[m.UserID]; ok && !p.rerun(r, m) {
			continue
		}
		fresh = append(fresh, candidate{step: 0, run: v1alpha1.PlaybookRun{
			UserID: m.UserID, AccountID: m.AccountID, Persona: m.Persona,
			EnteredAt: metav1.NewTime(m.EnteredAt), Step: p.in.Spec.Steps[0].Name, Phase: v1alpha1.RunPending,
		}})
	}
	sort.SliceStable(fresh, func(i, j int) bool {
		a, b := fresh[i].run, fresh[j].run
		if !a.EnteredAt.Equal(&b.EnteredAt) {
			return a.EnteredAt.Before(&b.EnteredAt)
		}
		return a.UserID < b.UserID
	})
	return append(next, fresh...)
}

// triggers are the entries (or exits) that call for a run, one per user.
func (p *planner) triggers() []Member {
	// In no particular order: what a pass does per member does not depend on
	// it, and candidates() orders launches by entry time and user id.
	members := p.in.Members
	if !p.in.Spec.OnExit {
		var out []Member
		for _, m := range members {
			if p.in.Spec.IncludeExisting || !m.EnteredAt.Before(p.in.Spec.Created) {
				out = append(out, m)
			}
		}
		return out
	}
	return p.exits(members)
}

// exits finds users who left. Membership slices only hold who is inside now,
// so an Exit playbook records an Armed run for each member it may later act on;
// a user exits when their armed entry is no longer in the persona. The armed
// record turns into the run when it launches, and stays armed (so the exit is
// found again) until then.
func (p *planner) exits(members []Member) []Member {
	inside := make(map[string]Member, len(members))
	for _, m := range members {
		inside[m.UserID] = m
	}
	var out []Member
	for _, u := range usersIn(p.runs, v1alpha1.RunArmed) {
		r := p.runs[u]
		if m, ok := inside[u]; ok && m.Persona == r.Persona && m.EnteredAt.Equal(r.EnteredAt.Time) {
			continue // still inside: same entry
		}
		out = append(out, Member{Persona: r.Persona, UserID: u, AccountID: r.AccountID, EnteredAt: r.EnteredAt.Time})
		delete(p.runs, u) // the armed record becomes the run
	}
	for _, m := range members {
		if !p.in.Spec.IncludeExisting && m.EnteredAt.Before(p.in.Spec.Created) {
			continue
		}
		if r, ok := p.runs[m.UserID]; ok && !p.rerun(r, m) {
			continue
		}
		if r, ok := p.runs[m.UserID]; ok && r.Phase == v1alpha1.RunArmed {
			continue
		}
		p.set(v1alpha1.PlaybookRun{UserID: m.UserID, AccountID: m.AccountID, Persona: m.Persona,
			EnteredAt: metav1.NewTime(m.EnteredAt), Phase: v1alpha1.RunArmed})
	}
	return out
}

// rerun reports whether a user with a recorded run gets a new one for m
// (Reruns), and comes back when a cooldown ends.
func (p *planner) rerun(r v1alpha1.PlaybookRun, m Member) bool {
	ok, until := Reruns(p.in.Spec, r, m, p.in.Now)
	if !until.IsZero() {
		p.wake(until)
	}
	return ok
}

// launch turns candidates into Jobs within the guardrails. Batches hold runs
// of one step only.
func (p *planner) launch(cands []candidate) {
	if p.in.Limits.Paused || len(cands) == 0 {
		p.pending(cands)
		return
	}
	slots := min(p.in.Limits.MaxConcurrent-p.runningJobs(), p.in.Limits.Budget)
	per := max(p.in.Spec.UsersPerJob, 1)
	i := 0
	for slots > 0 && i < len(cands) {
		batch := []candidate{cands[i]}
		for i+len(batch) < len(cands) && len(batch) < per && cands[i+len(batch)].step == cands[i].step {
			batch = append(batch, cands[i+len(batch)])
		}
		p.start(batch)
		i += len(batch)
		slots--
	}
	p.pending(cands[i:])
}

func (p *planner) start(batch []candidate) {
	step := p.in.Spec.Steps[batch[0].step].Name
	keys := make([]string, len(batch))
	for i, c := range batch {
		keys[i] = EntryKey(p.in.Spec.Once, c.run.UserID, c.run.Persona, c.run.EnteredAt.Time)
	}
	name := JobName(p.in.Spec.Name, p.in.Spec.UID, step, keys)
	l := Launch{Job: name, Step: batch[0].step, New: true}
	now := metav1.NewTime(p.in.Now)
	for _, c := range batch {
		r := c.run
		r.Step, r.Phase, r.Job, r.Reason, r.FinishedAt = step, v1alpha1.RunRunning, name, "", nil
		if c.step == 0 {
			r.StartedAt = &now
		}
		p.set(r)
		l.Runs = append(l.Runs, r)
	}
	p.plan.Launch = append(p.plan.Launch, l)
}

// pending counts runs left waiting; new entries are not recorded until they
// launch (the membership slices remember them), next steps already are.
func (p *planner) pending(cands []candidate) {
	for _, c := range cands {
		p.plan.Counts.Pending++
		p.checkDue(c.run, c.step)
		p.plan.States[c.run.UserID] = stateOf(p.in.Spec, c.run, v1alpha1.RunPending, p.in.Now)
	}
}

func (p *planner) runningJobs() int {
	jobs := map[string]bool{}
	for _, r := range p.runs {
		if r.Phase == v1alpha1.RunRunning {
			jobs[r.Job] = true
		}
	}
	return len(jobs)
}

func (p *planner) count() {
	c := &p.plan.Counts
	// Any order: counts, the earliest due time and per-user states do not
	// depend on it, and the overdue list is sorted below.
	for u, r := range p.runs {
		switch r.Phase {
		case v1alpha1.RunRunning:
			c.Running++
			p.checkDue(r, p.stepIndex(r.Step))
		case v1alpha1.RunPending:
			// Counted as pending by pending() when it was a candidate.
		case v1alpha1.RunSucceeded:
			c.Succeeded++
		case v1alpha1.RunFailed:
			c.Failed++
		}
		if _, ok := p.plan.States[u]; !ok && r.Phase != v1alpha1.RunArmed && r.Phase != v1alpha1.RunPending {
			// A pending re-entry (set by pending()) is newer than the
			// finished run still recorded for the user.
			p.plan.States[u] = stateOf(p.in.Spec, r, r.Phase, p.in.Now)
		}
	}
	c.RunningJobs = p.runningJobs()
	sort.Slice(p.plan.Overdue, func(i, j int) bool { return p.plan.Overdue[i].UserID < p.plan.Overdue[j].UserID })
}

// checkDue records an overdue step, or when it will become overdue.
func (p *planner) checkDue(r v1alpha1.PlaybookRun, step int) {
	if step < 0 || p.in.Spec.Steps[step].DueAfter <= 0 {
		return
	}
	due := r.EnteredAt.Add(p.in.Spec.Steps[step].DueAfter)
	if p.in.Now.Before(due) {
		p.wake(due)
		return
	}
	p.plan.Counts.Overdue++
	p.plan.Overdue = append(p.plan.Overdue, Overdue{UserID: r.UserID, Step: p.in.Spec.Steps[step].Name, Since: due})
}

// stateOf is a run's State in the given phase. Only unfinished runs have a
// deadline, from the entry as for checkDue.
func stateOf(spec Spec, r v1alpha1.PlaybookRun, phase v1alpha1.RunPhase, now time.Time) State {
	st := State{Phase: phase, Step: r.Step}
	if phase != v1alpha1.RunPending && phase != v1alpha1.RunRunning {
		return st
	}
	for _, s := range spec.Steps {
		if s.Name == r.Step && s.DueAfter > 0 {
			st.DueAt = r.EnteredAt.Add(s.DueAfter)
			st.Overdue = !now.Before(st.DueAt)
		}
	}
	return st
}

// LedgerStates is States from the ledger alone, for a pass that cannot plan
// (no persona matches the trigger): the recorded runs as they stand, and the
// earliest future due time (zero if none) to come back at.
func LedgerStates(spec Spec, runs map[string]v1alpha1.PlaybookRun, now time.Time) (map[string]State, time.Time) {
	out := make(map[string]State, len(runs))
	var wake time.Time
	for u, r := range runs {
		if r.Phase == v1alpha1.RunArmed {
			continue
		}
		st := stateOf(spec, r, r.Phase, now)
		out[u] = st
		if !st.DueAt.IsZero() && !st.Overdue && (wake.IsZero() || st.DueAt.Before(wake)) {
			wake = st.DueAt
		}
	}
	return out, wake
}

func (p *planner) wake(t time.Time) {
	if p.plan.Wake.IsZero() || t.Before(p.plan.Wake) {
		p.plan.Wake = t
	}
}

func (p *planner) stepIndex(name string) int {
	for i, s := range p.in.Spec.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// dedupe keeps one membership per user (a stage playbook can watch several
// personas), as better chooses.
func dedupe(members []Member) map[string]Member {
	best := make(map[string]Member, len(members))
	for _, m := range members {
		if b, ok := best[m.UserID]; !ok || better(m, b) {
			best[m.UserID] = m
		}
	}
	return best
}

// better reports whether membership a wins over b for the same user: the
// earliest entry, then the persona name (then the account, for a user listed
// twice by hand), so the choice does not depend on the order they are read in.
func better(a, b Member) bool {
	if !a.EnteredAt.Equal(b.EnteredAt) {
		return a.EnteredAt.Before(b.EnteredAt)
	}
	return a.Persona < b.Persona || (a.Persona == b.Persona && a.AccountID < b.AccountID)
}

// usersIn lists, sorted, the users whose run is in the phase: passes act on
// runs in user order so that two passes decide the same launches (and batch
// the same users into a Job of the same name), and sorting only the runs in
// one phase keeps a pass over many finished runs cheap.
func usersIn(runs map[string]v1alpha1.PlaybookRun, phase v1alpha1.RunPhase) []string {
	var users []string
	for u, r := range runs {
		if r.Phase == phase {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	return users
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
