package playbook

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func TestTargetOfMirrorsStage(t *testing.T) {
	p := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{
		"team": "cs", v1alpha1.StageLabel: "trial"}}, Spec: v1alpha1.PersonaSpec{Stage: v1alpha1.StageRetention}}
	got := TargetOf(p)
	want := map[string]string{"team": "cs", v1alpha1.StageLabel: "retention"}
	if got.Name != "p" || !reflect.DeepEqual(got.Labels, want) {
		t.Errorf("TargetOf = %+v, want labels %v", got, want)
	}
	p.Spec.Stage = ""
	if _, ok := TargetOf(p).Labels[v1alpha1.StageLabel]; ok {
		t.Error("a persona without spec.stage kept a stale stage label")
	}
	if p.Labels[v1alpha1.StageLabel] != "trial" {
		t.Error("TargetOf modified the persona's labels")
	}
}

func TestTrigger(t *testing.T) {
	retention := Target{Name: "at-risk", Labels: map[string]string{"team": "cs", v1alpha1.StageLabel: "retention"}}
	unlabelled := Target{Name: "at-risk"}
	sel := func(l map[string]string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: l} }
	tests := []struct {
		name    string
		spec    v1alpha1.PlaybookSpec
		target  Target
		selects bool
		by      string
		wantErr bool
	}{
		{"personaRef of the persona", v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "at-risk"}}, retention, true, "personaRef", false},
		{"personaRef of another", v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "other"}}, retention, false, "personaRef", false},
		{"personaRef wins over stage", v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "at-risk"}, Stage: v1alpha1.StageTrial}, retention, true, "personaRef", false},
		{"selector matches", v1alpha1.PlaybookSpec{PersonaSelector: sel(map[string]string{"team": "cs"})}, retention, true, "personaSelector", false},
		{"selector wins over stage", v1alpha1.PlaybookSpec{PersonaSelector: sel(map[string]string{"team": "sales"}), Stage: v1alpha1.StageRetention}, retention, false, "personaSelector", false},
		{"selector on an unlabelled persona", v1alpha1.PlaybookSpec{PersonaSelector: sel(map[string]string{"team": "cs"})}, unlabelled, false, "personaSelector", false},
		{"invalid selector", v1alpha1.PlaybookSpec{PersonaSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: "Sometimes"}}}}, retention, false, "personaSelector", true},
		{"stage matches the label", v1alpha1.PlaybookSpec{Stage: v1alpha1.StageRetention}, retention, true, "stage", false},
		{"stage of another", v1alpha1.PlaybookSpec{Stage: v1alpha1.StageTrial}, retention, false, "stage", false},
		{"stage of an unlabelled persona", v1alpha1.PlaybookSpec{Stage: v1alpha1.StageRetention}, unlabelled, false, "stage", false},
		{"no trigger selects nothing", v1alpha1.PlaybookSpec{}, retention, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trigger, err := TriggerOf(&tt.spec)
			if (err != nil) != tt.wantErr || trigger.By != tt.by {
				t.Fatalf("TriggerOf = %+v, %v; want by %q, error %v", trigger, err, tt.by, tt.wantErr)
			}
			if got := trigger.Selects(tt.target); got != tt.selects {
				t.Errorf("Selects = %v, want %v", got, tt.selects)
			}
		})
	}
}

func TestReruns(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	entered := now.Add(-time.Hour)
	at := func(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }
	every := Spec{Cooldown: 24 * time.Hour}
	entry := Member{Persona: "p", UserID: "u1", EnteredAt: now}
	done := v1alpha1.PlaybookRun{UserID: "u1", Persona: "p", EnteredAt: metav1.NewTime(entered), Phase: v1alpha1.RunSucceeded, StartedAt: at(now.Add(-48 * time.Hour))}
	with := func(r v1alpha1.PlaybookRun, f func(*v1alpha1.PlaybookRun)) v1alpha1.PlaybookRun { f(&r); return r }
	tests := []struct {
		name  string
		spec  Spec
		run   v1alpha1.PlaybookRun
		entry Member
		ok    bool
		until time.Time
	}{
		{"Once never runs twice", Spec{Once: true}, done, entry, false, time.Time{}},
		{"a new entry after a finished run", every, done, entry, true, time.Time{}},
		{"after a failed run", every, with(done, func(r *v1alpha1.PlaybookRun) { r.Phase = v1alpha1.RunFailed }), entry, true, time.Time{}},
		{"the same entry", every, done, Member{Persona: "p", UserID: "u1", EnteredAt: entered}, false, time.Time{}},
		{"the same time in another persona", every, done, Member{Persona: "q", UserID: "u1", EnteredAt: entered}, true, time.Time{}},
		{"one run at a time", every, with(done, func(r *v1alpha1.PlaybookRun) { r.Phase = v1alpha1.RunRunning }), entry, false, time.Time{}},
		{"an armed run is not finished", every, with(done, func(r *v1alpha1.PlaybookRun) { r.Phase = v1alpha1.RunArmed }), entry, false, time.Time{}},
		{"within the cooldown", every, with(done, func(r *v1alpha1.PlaybookRun) { r.StartedAt = at(now.Add(-time.Hour)) }), entry, false, now.Add(23 * time.Hour)},
		{"no cooldown", Spec{}, with(done, func(r *v1alpha1.PlaybookRun) { r.StartedAt = at(now) }), entry, true, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, until := Reruns(tt.spec, tt.run, tt.entry, now)
			if ok != tt.ok || !until.Equal(tt.until) {
				t.Errorf("Reruns = %v, %v; want %v, %v", ok, until, tt.ok, tt.until)
			}
		})
	}
}

func TestSpecOf(t *testing.T) {
	created := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "pb", UID: "uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.PlaybookSpec{Trigger: v1alpha1.TriggerExit, ReentryPolicy: v1alpha1.ReentryEveryEntry,
			Cooldown: &metav1.Duration{Duration: time.Hour}, IncludeExistingMembers: true, UsersPerJob: 5,
			Steps: []v1alpha1.PlaybookStep{{Name: "a"}, {Name: "b", DueAfter: &metav1.Duration{Duration: time.Minute}}}}}
	want := Spec{Name: "pb", UID: "uid", OnExit: true, Once: false, Cooldown: time.Hour, IncludeExisting: true,
		Created: created, UsersPerJob: 5, Steps: []Step{{Name: "a"}, {Name: "b", DueAfter: time.Minute}}}
	if got := SpecOf(pb); !reflect.DeepEqual(got, want) {
		t.Errorf("SpecOf =\n %+v, want\n %+v", got, want)
	}
	pb.Spec = v1alpha1.PlaybookSpec{}
	if got := SpecOf(pb); got.OnExit || !got.Once || got.Cooldown != 0 {
		t.Errorf("SpecOf(defaults) = %+v, want an Enter playbook, Once, no cooldown", got)
	}
}
