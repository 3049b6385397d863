package persona

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

var (
	usersSpec = v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "role", Type: v1alpha1.TypeString},
			{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "lastSeen", Type: v1alpha1.TypeTimestamp},
			{Name: "features", Type: v1alpha1.TypeList}}}
	accountsSpec = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString},
			{Name: "renewalDate", Type: v1alpha1.TypeTimestamp}}}
	requestsSpec = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "user"},
		Signal:     &v1alpha1.SignalSpec{Attribute: "requests", ValueAttribute: "feature"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}}}
)

// world is random source contents that a test changes step by step.
type world struct {
	r        *rand.Rand
	users    map[string]map[string]any
	accounts map[string]map[string]any
	requests map[string][]string
}

func newWorld(seed uint64) *world {
	w := &world{r: rand.New(rand.NewPCG(seed, 1)), users: map[string]map[string]any{},
		accounts: map[string]map[string]any{}, requests: map[string][]string{}}
	for i := range 60 {
		w.users[fmt.Sprintf("u%02d", i)] = w.user()
	}
	for i := range 12 {
		w.accounts[fmt.Sprintf("a%02d", i)] = w.account()
	}
	for i := range 30 {
		w.requests[fmt.Sprintf("u%02d", i)] = w.features()
	}
	return w
}

func (w *world) user() map[string]any {
	u := map[string]any{"account": fmt.Sprintf("a%02d", w.r.IntN(14)), "role": []string{"admin", "decision_maker", "user"}[w.r.IntN(3)],
		"nps": int64(w.r.IntN(11)), "lastSeen": now.Add(-time.Duration(w.r.IntN(90*24)) * time.Hour),
		"features": w.features()}
	if w.r.IntN(8) == 0 {
		delete(u, "nps") // absent: the rule errs for this profile
	}
	if w.r.IntN(10) == 0 {
		delete(u, "account")
	}
	return u
}

func (w *world) account() map[string]any {
	return map[string]any{"tier": []string{"enterprise", "smb"}[w.r.IntN(2)],
		"renewalDate": now.Add(time.Duration(w.r.IntN(200*24)) * time.Hour)}
}

func (w *world) features() []string {
	var out []string
	for range w.r.IntN(3) {
		out = append(out, []string{"sso", "audit_log", "api"}[w.r.IntN(3)])
	}
	return out
}

func rows(m map[string]map[string]any, key string) []map[string]any {
	var out []map[string]any
	for _, id := range slices.Sorted(maps.Keys(m)) {
		r := maps.Clone(m[id])
		r[key] = id
		out = append(out, r)
	}
	return out
}

func (w *world) usersData(t testing.TB) *profile.SourceData {
	return profiletest.SourceData(t, "users", usersSpec, rows(w.users, "id")...)
}

func (w *world) accountsData(t testing.TB) *profile.SourceData {
	return profiletest.SourceData(t, "accounts", accountsSpec, rows(w.accounts, "id")...)
}

func (w *world) requestsData(t testing.TB) *profile.SourceData {
	var recs []map[string]any
	for _, id := range slices.Sorted(maps.Keys(w.requests)) {
		for _, f := range w.requests[id] {
			recs = append(recs, map[string]any{"user": id, "feature": f})
		}
	}
	return profiletest.SourceData(t, "requests", requestsSpec, recs...)
}

// step changes the world at random and applies the change to the store the
// way the DataSource controller would: an incremental delta, a full sync of
// one source, or a playbook publish.
func (w *world) step(t testing.TB, n *profile.Namespace) {
	switch w.r.IntN(7) {
	case 0, 1: // an incremental sync of users: a few upserts and deletes
		m, err := attr.NewMapper(&usersSpec)
		if err != nil {
			t.Fatal(err)
		}
		db := profile.NewDeltaBuilder("users", m)
		for range 1 + w.r.IntN(4) {
			id := fmt.Sprintf("u%02d", w.r.IntN(70))
			if _, ok := w.users[id]; ok && w.r.IntN(4) == 0 {
				delete(w.users, id)
				db.Delete(mapRecord(t, m, map[string]any{"id": id}))
				continue
			}
			w.users[id] = w.user()
			r := maps.Clone(w.users[id])
			r["id"] = id
			db.Upsert(mapRecord(t, m, r))
		}
		n.ApplyDelta(db.Finish())
	case 2: // a full sync of accounts with a few changed
		for range 1 + w.r.IntN(2) {
			w.accounts[fmt.Sprintf("a%02d", w.r.IntN(14))] = w.account()
		}
		n.Apply(w.accountsData(t))
	case 3: // a full re-sync of users, one row changed, reusing the stored rows
		w.users[fmt.Sprintf("u%02d", w.r.IntN(70))] = w.user()
		n.Apply(profiletest.Resync(t, "users", usersSpec, n.Source("users"), rows(w.users, "id")...))
	case 4: // a full sync of signals
		w.requests[fmt.Sprintf("u%02d", w.r.IntN(70))] = w.features()
		n.Apply(w.requestsData(t))
	case 6: // a full re-sync of users, reusing rows, with many rows changed
		for range 5 + w.r.IntN(20) {
			w.users[fmt.Sprintf("u%02d", w.r.IntN(70))] = w.user()
		}
		n.Apply(profiletest.Resync(t, "users", usersSpec, n.Source("users"), rows(w.users, "id")...))
	case 5: // a playbook's runs change
		states := map[string]profile.PlaybookState{}
		for range w.r.IntN(5) {
			states[fmt.Sprintf("u%02d", w.r.IntN(70))] = profile.PlaybookState{Phase: []string{"Running", "Succeeded"}[w.r.IntN(2)], Step: "s"}
		}
		n.PublishPlaybook("onboard", states)
	}
}

func mapRecord(t testing.TB, m *attr.Mapper, r map[string]any) attr.Mapped {
	t.Helper()
	var rec connector.Record
	for _, k := range slices.Sorted(maps.Keys(r)) {
		rec.Fields = append(rec.Fields, k)
		rec.Values = append(rec.Values, r[k])
	}
	mapped, err := m.Map(rec)
	if err != nil {
		t.Fatal(err)
	}
	return mapped
}

var changeRules = []string{
	`user.role == "decision_maker" && account.tier == "enterprise"`,
	`user.nps <= 6`,
	`account.renewalDate - now <= duration("2160h") && user.nps < 7`,
	`now - user.lastSeen > duration("720h")`,
	`"sso" in user.requests`,
	`size(user.requests) >= 2 || user.role == "admin"`,
	`has(user.playbooks.onboard) && user.playbooks.onboard.phase == "Running"`,
	`!has(account.tier)`,
	`user.nps >= 5 && size(user.features) >= 2`,
}

// TestChangeDrivenEqualsFull is the property change-driven evaluation rests
// on: after any sequence of syncs (incremental, full, of users, accounts or
// signals, and playbook state), re-evaluating only what the store says
// changed gives exactly the members a full evaluation gives, with the time
// moving on (a crossing makes the evaluation full).
func TestChangeDrivenEqualsFull(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newWorld(seed)
			n := profile.NewStore().Namespace("ns")
			n.Apply(w.usersData(t))
			n.Apply(w.accountsData(t))
			n.Apply(w.requestsData(t))
			n.PublishPlaybook("onboard", nil)
			type state struct {
				mem    *Memory
				stored map[string]string
			}
			states := make([]state, len(changeRules))
			// The schema stays the same through the steps: compile once.
			compiled := make([]*Compiled, len(changeRules))
			n.Read(nil, func(v *profile.View) {
				for i, src := range changeRules {
					c, err := Compile(&v1alpha1.PersonaSpec{Rule: src}, v.Schema())
					if err != nil {
						t.Fatal(err)
					}
					compiled[i] = c
				}
			})
			at := now
			reasons := map[string]int{}
			for step := range 40 {
				w.step(t, n)
				at = at.Add(time.Duration(w.r.IntN(36)) * time.Hour)
				for i, src := range changeRules {
					n.Read(nil, func(v *profile.View) {
						c := compiled[i]
						full := Evaluate(v, c, at, time.Now)
						st := &states[i]
						// Insights are not compared: no refresh by time.
						in := PlanInput{Key: "k", Now: at, Profiles: v.UsersKnown(), FullInterval: 1 << 62}
						if st.mem != nil {
							in.Changes = v.Changes(st.mem.Generation)
						}
						ev, isFull, matching := full, true, full.Matching
						reason := FullReason(st.mem, in)
						if reason == "" {
							var ok bool
							if ev, ok = EvaluateChanged(v, c, st.mem, in.Changes, at, time.Now); ok {
								isFull, reason = false, ModeChanged
								matching = withVerdicts(st.stored, ev.Verdicts)
								if st.mem.Members != nil && ev.Members.SymmetricDifference(full.Members).Count() != 0 {
									t.Fatalf("step %d, rule %q: the members bitset after a change-driven pass differs from a full evaluation's", step, src)
								}
							} else {
								ev, reason = full, FullMany
							}
						}
						if isFull {
							// A full pass whose memory holds the stored
							// members writes only the verdicts of what
							// differs: the same members.
							if verdicts, ok := FullVerdicts(st.mem, full, v, in); ok {
								matching, reason = withVerdicts(st.stored, verdicts), "bitset: "+reason
							}
						}
						reasons[reason]++
						if !maps.Equal(matching, full.Matching) {
							t.Fatalf("step %d, rule %q (full %v): change-driven members\n%v\nfull evaluation\n%v",
								step, src, isFull, slices.Sorted(maps.Keys(matching)), slices.Sorted(maps.Keys(full.Matching)))
						}
						st.mem = Remember(st.mem, ev, isFull, "k", v.Generation(), nil, at)
						st.stored = matching
					})
				}
			}
			t.Logf("evaluations by mode or full reason: %v", reasons)
			if reasons[ModeChanged] < len(changeRules)*10 || reasons["bitset: "+FullTime] == 0 {
				t.Fatalf("evaluations by mode or full reason %v: the property was not exercised", reasons)
			}
		})
	}
}

// withVerdicts is the stored membership after a change-driven write.
func withVerdicts(stored map[string]string, verdicts map[string]membership.Verdict) map[string]string {
	out := maps.Clone(stored)
	for id, vd := range verdicts {
		delete(out, id)
		if vd.Match {
			out[id] = vd.AccountID
		}
	}
	return out
}

func TestFullReason(t *testing.T) {
	slicesNow := map[string]int64{"s-1": 3}
	mem := &Memory{Key: "k", Slices: slicesNow, FullAt: now, FullDuration: 2 * time.Second}
	withInsights := &Memory{Key: "k", Slices: slicesNow, FullAt: now, FullDuration: 2 * time.Second,
		Insights: []v1alpha1.InsightResult{{Name: "top"}}}
	few := profile.Changes{Users: []string{"u1"}}
	base := PlanInput{Key: "k", Slices: slicesNow, Now: now.Add(time.Second), Refresh: 10 * time.Minute, Changes: few,
		Profiles: 100, FullInterval: MinFullInterval}
	tests := []struct {
		name   string
		mem    *Memory
		change func(*PlanInput)
		want   string
	}{
		{name: "a few changes", mem: mem, want: ""},
		{name: "nothing changed", mem: mem, change: func(in *PlanInput) { in.Changes = profile.Changes{} }, want: ""},
		{name: "no memory", want: FullFirst},
		{name: "another spec, schema or selection", mem: mem, change: func(in *PlanInput) { in.Key = "other" }, want: FullSpec},
		{name: "slices written by someone else", mem: mem, change: func(in *PlanInput) { in.Slices = map[string]int64{"s-1": 4} },
			want: FullSlices},
		{name: "a slice deleted by someone else", mem: mem, change: func(in *PlanInput) { in.Slices = nil }, want: FullSlices},
		{name: "partial selection", mem: mem, change: func(in *PlanInput) { in.Partial = true }, want: FullPartial},
		{name: "the journal cannot tell", mem: mem, change: func(in *PlanInput) { in.Changes = profile.Changes{All: true} }, want: FullStore},
		{name: "a time threshold crossed", mem: &Memory{Key: "k", Slices: slicesNow, FullAt: now, NextChange: now.Add(time.Second)},
			want: FullTime},
		{name: "more than a tenth changed", mem: mem, change: func(in *PlanInput) {
			in.Profiles, in.Changes = 500, profile.Changes{Users: make([]string, 40), Accounts: make([]string, 40)}
		}, want: FullMany},
		{name: "a tenth of a small namespace changed", mem: mem, change: func(in *PlanInput) {
			in.Profiles, in.Changes = 5, profile.Changes{Users: make([]string, 3)}
		}, want: ""},
		{name: "refresh interval", mem: mem, change: func(in *PlanInput) { in.Now = now.Add(10 * time.Minute) }, want: FullRefresh},
		{name: "insights due after changes", mem: withInsights, change: func(in *PlanInput) { in.Now = now.Add(MinFullInterval) },
			want: FullInsights},
		{name: "no insights: no refresh but the refresh interval's", mem: mem,
			change: func(in *PlanInput) { in.Now = now.Add(MinFullInterval) }, want: ""},
		{name: "insights due: no sooner than ten full evaluations", mem: &Memory{Key: "k", Slices: slicesNow, FullAt: now,
			FullDuration: 10 * time.Second, Insights: withInsights.Insights}, change: func(in *PlanInput) { in.Now = now.Add(MinFullInterval) },
			want: ""},
		{name: "insights due but nothing changed", mem: withInsights,
			change: func(in *PlanInput) { in.Now, in.Changes = now.Add(MinFullInterval), profile.Changes{} }, want: ""},
		{name: "a crossing waits ten full passes' time", mem: &Memory{Key: "k", Slices: slicesNow, FullAt: now,
			FullDuration: time.Second, NextChange: now.Add(time.Second)}, change: func(in *PlanInput) { in.Now = now.Add(5 * time.Second) },
			want: ""},
		{name: "and then is full", mem: &Memory{Key: "k", Slices: slicesNow, FullAt: now,
			FullDuration: time.Second, NextChange: now.Add(time.Second)}, change: func(in *PlanInput) { in.Now = now.Add(10 * time.Second) },
			want: FullTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			if tt.change != nil {
				tt.change(&in)
			}
			if got := FullReason(tt.mem, in); got != tt.want {
				t.Errorf("FullReason = %q, want %q", got, tt.want)
			}
		})
	}
}
