package preview

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

func TestDiff(t *testing.T) {
	rec := func(ids ...string) []queryapi.Member {
		var out []queryapi.Member
		for _, id := range ids {
			out = append(out, queryapi.Member{UserID: id})
		}
		return out
	}
	match := func(ids ...string) map[string]string {
		m := map[string]string{}
		for _, id := range ids {
			m[id] = "acct"
		}
		return m
	}
	tests := []struct {
		name            string
		recorded        []queryapi.Member
		matching        map[string]string
		entered, exited []string
	}{
		{"new persona: everyone enters", nil, match("u2", "u1"), []string{"u1", "u2"}, nil},
		{"no change", rec("u1", "u2"), match("u2", "u1"), nil, nil},
		{"some enter, some exit", rec("u1", "u2", "u3"), match("u3", "u4", "u0"), []string{"u0", "u4"}, []string{"u1", "u2"}},
		{"everyone exits", rec("u2", "u1"), match(), nil, []string{"u1", "u2"}},
		{"a user in two slices exits once", rec("u1", "u1"), match(), nil, []string{"u1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, exited := Diff(tt.recorded, tt.matching)
			if !reflect.DeepEqual(entered, tt.entered) || !reflect.DeepEqual(exited, tt.exited) {
				t.Errorf("Diff = entered %v exited %v, want %v %v", entered, exited, tt.entered, tt.exited)
			}
		})
	}
}

func TestSampleAndChange(t *testing.T) {
	ids := []string{"a", "b", "c"}
	if got := Sample(ids, 2); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Sample(2) = %v", got)
	}
	if got := Sample(ids, 10); !reflect.DeepEqual(got, ids) {
		t.Errorf("Sample(10) = %v", got)
	}
	if got := Sample(nil, 10); got == nil || len(got) != 0 {
		t.Errorf("Sample(nil) = %#v, want an empty, non-nil slice", got)
	}
	if got := Change(ids, 1); got.Count != 3 || !reflect.DeepEqual(got.Sample, []string{"a"}) {
		t.Errorf("Change = %+v", got)
	}
	if got := SortedIDs(map[string]string{"b": "", "a": ""}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("SortedIDs = %v", got)
	}
}

func TestMatches(t *testing.T) {
	target := playbook.Target{Name: "at-risk", Labels: map[string]string{"team": "cs", v1alpha1.StageLabel: "retention"}}
	tests := []struct {
		name    string
		spec    v1alpha1.PlaybookSpec
		match   bool
		by      string
		wantErr bool
	}{
		{"personaRef matches", v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "at-risk"}}, true, "personaRef", false},
		{"personaRef other", v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "other"}}, false, "personaRef", false},
		{"selector matches", v1alpha1.PlaybookSpec{PersonaSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "cs"}}}, true, "personaSelector", false},
		{"selector expression", v1alpha1.PlaybookSpec{PersonaSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"cs"}}}}}, false, "personaSelector", false},
		{"invalid selector", v1alpha1.PlaybookSpec{PersonaSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: "Sometimes"}}}}, false, "personaSelector", true},
		{"stage matches", v1alpha1.PlaybookSpec{Stage: v1alpha1.StageRetention}, true, "stage", false},
		{"stage other", v1alpha1.PlaybookSpec{Stage: v1alpha1.StageTrial}, false, "stage", false},
		{"no trigger", v1alpha1.PlaybookSpec{}, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "pb"}, Spec: tt.spec}
			match, by, err := Matches(pb, target)
			if (err != nil) != tt.wantErr || match != tt.match || by != tt.by {
				t.Errorf("Matches = %v, %q, %v; want %v, %q, error %v", match, by, err, tt.match, tt.by, tt.wantErr)
			}
		})
	}
}

func TestLaunches(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ref := func(name string, trig v1alpha1.TriggerEvent, policy v1alpha1.ReentryPolicy, cooldown time.Duration) v1alpha1.Playbook {
		pb := v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.PlaybookSpec{
			PersonaRef: &v1alpha1.LocalObjectReference{Name: "p"}, Trigger: trig, ReentryPolicy: policy}}
		if cooldown > 0 {
			pb.Spec.Cooldown = &metav1.Duration{Duration: cooldown}
		}
		return pb
	}
	stage := v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "by-stage"}, Spec: v1alpha1.PlaybookSpec{Stage: v1alpha1.StageTrial, Suspend: true}}
	other := v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "q"}}}
	started := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	runs := map[string]map[string]v1alpha1.PlaybookRun{
		"once": {"u1": {UserID: "u1", Persona: "p", Phase: v1alpha1.RunSucceeded}},
		"every": {
			"u1": {UserID: "u1", Persona: "p", Phase: v1alpha1.RunSucceeded, StartedAt: started(48 * time.Hour)},
			"u2": {UserID: "u2", Persona: "p", Phase: v1alpha1.RunRunning},
		},
		"cool": {"u1": {UserID: "u1", Persona: "p", Phase: v1alpha1.RunSucceeded, StartedAt: started(time.Hour)}},
		"exit": {
			"x1": {UserID: "x1", Persona: "p", Phase: v1alpha1.RunArmed},
			"x2": {UserID: "x2", Persona: "other", Phase: v1alpha1.RunArmed},
			"u9": {UserID: "u9", Persona: "p", Phase: v1alpha1.RunArmed},
		},
	}
	playbooks := []v1alpha1.Playbook{
		ref("once", "", "", 0), ref("every", v1alpha1.TriggerEnter, v1alpha1.ReentryEveryEntry, 0),
		ref("cool", v1alpha1.TriggerEnter, v1alpha1.ReentryEveryEntry, 24*time.Hour),
		ref("exit", v1alpha1.TriggerExit, "", 0), stage, other,
	}
	in := Input{Persona: "p", After: playbook.Target{Name: "p", Labels: map[string]string{v1alpha1.StageLabel: "trial"}},
		Entered: []string{"u1", "u2", "u3"}, Exited: []string{"x1", "x2", "x3"}, Runs: runs, Now: now}
	got := Launches(playbooks, in)
	want := []queryapi.PlaybookLaunch{
		{Name: "by-stage", Trigger: v1alpha1.TriggerEnter, By: "stage", Users: 3, Suspended: true},
		{Name: "cool", Trigger: v1alpha1.TriggerEnter, By: "personaRef", Users: 2, Skipped: 1},
		{Name: "every", Trigger: v1alpha1.TriggerEnter, By: "personaRef", Users: 2, Skipped: 1},
		{Name: "exit", Trigger: v1alpha1.TriggerExit, By: "personaRef", Users: 1, Skipped: 2},
		{Name: "once", Trigger: v1alpha1.TriggerEnter, By: "personaRef", Users: 2, Skipped: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Launches =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLaunchesWhenThePreviewStopsMatching(t *testing.T) {
	sel := func(name string, trig v1alpha1.TriggerEvent) v1alpha1.Playbook {
		return v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.PlaybookSpec{
			PersonaSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "cs"}}, Trigger: trig}}
	}
	in := Input{
		Persona: "p",
		After:   playbook.Target{Name: "p", Labels: map[string]string{"team": "sales"}},
		Before:  &playbook.Target{Name: "p", Labels: map[string]string{"team": "cs"}},
		Entered: []string{"u1"},
		Runs: map[string]map[string]v1alpha1.PlaybookRun{"exit": {
			"a": {UserID: "a", Persona: "p", Phase: v1alpha1.RunArmed},
			"b": {UserID: "b", Persona: "p", Phase: v1alpha1.RunArmed},
			"c": {UserID: "c", Persona: "p", Phase: v1alpha1.RunSucceeded},
		}},
	}
	got := Launches([]v1alpha1.Playbook{sel("enter", ""), sel("exit", v1alpha1.TriggerExit)}, in)
	want := []queryapi.PlaybookLaunch{
		{Name: "enter", Trigger: v1alpha1.TriggerEnter, By: "personaSelector", StopsMatching: true},
		{Name: "exit", Trigger: v1alpha1.TriggerExit, By: "personaSelector", Users: 2, StopsMatching: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Launches =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLaunchesReportsAnInvalidSelector(t *testing.T) {
	bad := v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1alpha1.PlaybookSpec{
		PersonaSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}}}
	good := v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: v1alpha1.PlaybookSpec{
		PersonaRef: &v1alpha1.LocalObjectReference{Name: "p"}}}
	got := Launches([]v1alpha1.Playbook{good, bad}, Input{Persona: "p", After: playbook.Target{Name: "p"}, Entered: []string{"u1"}})
	if len(got) != 2 || got[0].Name != "bad" || got[0].Error == "" || got[0].Users != 0 {
		t.Fatalf("Launches = %+v, want the invalid playbook listed first with its error", got)
	}
	if got[1].Name != "good" || got[1].Users != 1 || got[1].Error != "" {
		t.Errorf("the valid playbook = %+v, want 1 user", got[1])
	}
}
